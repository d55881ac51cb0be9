//! A gateway key's tenant: who it is, what it may use and how much. One
//! [`Tenant::admit`] per chat request, after the key was recognised and the
//! route found: routes, budgets, concurrency, request rate, token rate, in
//! that order. The [`Admission`] it returns holds the concurrency slot and
//! the token estimate until [`Admission::settle`] corrects it from the
//! provider's usage.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use switchyard_config::Priority;
use time::OffsetDateTime;

use crate::budget::{Budgets, Exhausted, Ledger, Used};
use crate::rate::{Limited, Rate};

/// A key's name, limits and state.
#[derive(Debug)]
pub struct Tenant {
    /// Who holds the key; what logs, metrics and policies see.
    pub name: Arc<str>,
    /// The name again, as a metrics label.
    label: Arc<String>,
    /// Served first, or last, when requests wait for a provider.
    pub priority: Priority,
    /// Route models this key may use; `None`: all.
    routes: Option<HashSet<String>>,
    requests: Option<Rate>,
    tokens: Option<Rate>,
    max_concurrency: Option<u32>,
    inflight: AtomicU32,
    budgets: Budgets,
    ledger: Arc<Ledger>,
}

/// Why a key's request was not let in.
#[derive(Debug, Clone, PartialEq)]
pub enum Denied {
    /// The key may not use this route (403).
    Route,
    /// The key's `max_concurrency` requests are in flight (429).
    Concurrency(u32),
    /// Over `requests_per_minute` (429).
    Requests(Limited),
    /// Over `tokens_per_minute` (429).
    Tokens(Limited),
    /// A daily or monthly budget is spent (the quota error).
    Budget(Exhausted),
}

/// What a request let in holds: its concurrency slot and its token estimate.
#[derive(Debug)]
pub struct Admission {
    tenant: Arc<Tenant>,
    estimate: u32,
    /// The token estimate was taken of the shared rate: corrected there.
    shared: Option<Arc<dyn crate::shared::SharedRates>>,
    /// Requests and tokens the key may still send, as the request was let in.
    pub remaining_requests: Option<u32>,
    /// See `remaining_requests`.
    pub remaining_tokens: Option<u32>,
}

impl Tenant {
    /// The tenant of `key`; `ledger` is its usage so far (kept across reloads);
    /// `routes` its allowed routes, resolved to route models.
    pub fn new(key: &switchyard_config::GatewayKey, routes: Option<HashSet<String>>, ledger: Arc<Ledger>) -> Tenant {
        Tenant {
            name: Arc::from(key.name.as_str()),
            label: Arc::new(key.name.clone()),
            priority: key.priority,
            routes,
            requests: key.requests_per_minute.map(Rate::new),
            tokens: key.tokens_per_minute.map(Rate::new),
            max_concurrency: key.max_concurrency,
            inflight: AtomicU32::new(0),
            budgets: Budgets {
                daily_tokens: key.daily_tokens,
                monthly_tokens: key.monthly_tokens,
                daily_usd: key.daily_spend_usd,
                monthly_usd: key.monthly_spend_usd,
            },
            ledger,
        }
    }

    /// The key's name as a metrics label.
    pub fn label(&self) -> Arc<String> {
        self.label.clone()
    }

    /// The key's usage book.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The key's budgets.
    pub fn budgets(&self) -> Budgets {
        self.budgets
    }

    /// Requests of this key in flight now.
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// The key's limits for the admin API: (requests/min, tokens/min, max concurrency).
    pub fn limits(&self) -> (Option<u32>, Option<u32>, Option<u32>) {
        (self.requests.as_ref().map(Rate::per_minute), self.tokens.as_ref().map(Rate::per_minute), self.max_concurrency)
    }

    /// Requests and tokens the key may send right now (`None`: unlimited).
    pub fn remaining(&self, now: Instant) -> (Option<u32>, Option<u32>) {
        (self.requests.as_ref().map(|r| r.remaining(now)), self.tokens.as_ref().map(|r| r.remaining(now)))
    }

    /// Lets a request for `route` (a route's model) with `estimated_tokens`
    /// of input in, or says why not. Nothing is taken from any limit unless
    /// the request is let in.
    pub fn admit(
        self: &Arc<Self>,
        route: &str,
        estimated_tokens: u32,
        now: Instant,
        wall: OffsetDateTime,
    ) -> Result<Admission, Denied> {
        self.admit_local(route, estimated_tokens, now, wall, 1)
    }

    /// [`Tenant::admit`] on this instance's buckets, one of `members`
    /// instances sharing the key's `max_concurrency`.
    fn admit_local(
        self: &Arc<Self>,
        route: &str,
        estimated_tokens: u32,
        now: Instant,
        wall: OffsetDateTime,
        members: u32,
    ) -> Result<Admission, Denied> {
        // From here on, dropping `admission` gives the slot back.
        let mut admission = self.admit_unrated(route, wall, members)?;
        if let Some(tokens) = &self.tokens {
            tokens.check(estimated_tokens, now).map_err(Denied::Tokens)?;
        }
        if let Some(requests) = &self.requests {
            admission.remaining_requests = Some(requests.take(1, now).map_err(Denied::Requests)?.remaining);
        }
        if let Some(tokens) = &self.tokens {
            // (Checked above; another request of the key may have taken
            // tokens since, which only deepens the debt the refill repays.)
            let taken = tokens.take(estimated_tokens, now).unwrap_or_else(|_| {
                tokens.settle(i64::from(estimated_tokens));
                crate::rate::Admitted { per_minute: tokens.per_minute(), remaining: 0 }
            });
            admission.remaining_tokens = Some(taken.remaining);
            admission.estimate = estimated_tokens;
        }
        Ok(admission)
    }

    /// [`Tenant::admit`] with the key's request and token rates counted in
    /// `shared`, across every instance, in one round trip; when it does not
    /// answer in time, this instance's own buckets decide, as `admit` does.
    pub async fn admit_shared(
        self: &Arc<Self>,
        route: &str,
        estimated_tokens: u32,
        now: Instant,
        wall: OffsetDateTime,
        shared: &Arc<dyn crate::shared::SharedRates>,
    ) -> Result<Admission, Denied> {
        let ask = crate::shared::RateAsk {
            requests_per_minute: self.requests.as_ref().map(Rate::per_minute),
            tokens_per_minute: self.tokens.as_ref().map(Rate::per_minute),
            tokens: estimated_tokens,
        };
        let members = shared.members();
        if ask.requests_per_minute.is_none() && ask.tokens_per_minute.is_none() {
            return self.admit_local(route, estimated_tokens, now, wall, members);
        }
        // Routes, budgets and concurrency first (and the concurrency slot
        // is held from here: dropping the admission gives it back).
        let mut admission = self.admit_unrated(route, wall, members)?;
        match shared.take(&format!("key:{}", self.name), ask).await {
            Some(crate::shared::RateAnswer::Admitted { requests, tokens }) => {
                admission.remaining_requests = requests.map(|a| a.remaining);
                admission.remaining_tokens = tokens.map(|a| a.remaining);
                if tokens.is_some() {
                    admission.estimate = estimated_tokens;
                    admission.shared = Some(shared.clone());
                }
                Ok(admission)
            }
            Some(crate::shared::RateAnswer::Requests(limited)) => Err(Denied::Requests(limited)),
            Some(crate::shared::RateAnswer::Tokens(limited)) => Err(Denied::Tokens(limited)),
            None => {
                drop(admission);
                self.admit_local(route, estimated_tokens, now, wall, members)
            }
        }
    }

    /// Routes, budgets and a concurrency slot (of this instance's share of
    /// `max_concurrency`, one of `members`); no rate taken.
    fn admit_unrated(self: &Arc<Self>, route: &str, wall: OffsetDateTime, members: u32) -> Result<Admission, Denied> {
        if self.routes.as_ref().is_some_and(|allowed| !allowed.contains(route)) {
            return Err(Denied::Route);
        }
        self.ledger.check(&self.budgets, wall).map_err(Denied::Budget)?;
        if let Some(max) = self.max_concurrency.map(|max| max.div_ceil(members.max(1))) {
            let taken = self.inflight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
            if taken.is_err() {
                return Err(Denied::Concurrency(max));
            }
        } else {
            self.inflight.fetch_add(1, Ordering::AcqRel);
        }
        Ok(Admission {
            tenant: self.clone(),
            estimate: 0,
            shared: None,
            remaining_requests: None,
            remaining_tokens: None,
        })
    }
}

impl Admission {
    /// The tenant let in.
    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// Records what the request used (as the provider reported it; zero
    /// tokens when it did not) and corrects the token rate's estimate.
    pub fn settle(&self, input_tokens: u64, output_tokens: u64, spend_usd: f64, wall: OffsetDateTime) {
        let used = Used { requests: 1, input_tokens, output_tokens, spend_usd };
        self.tenant.ledger.record(used, wall);
        if let Some(tokens) = &self.tenant.tokens
            && input_tokens + output_tokens > 0
        {
            let real = i64::try_from(input_tokens + output_tokens).unwrap_or(i64::MAX);
            let delta = real - i64::from(self.estimate);
            match &self.shared {
                Some(shared) => shared.settle_tokens(&format!("key:{}", self.tenant.name), tokens.per_minute(), delta),
                None => tokens.settle(delta),
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.tenant.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Denied {
    /// A short name of the refusal, for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::Route => "route",
            Denied::Concurrency(_) => "concurrency",
            Denied::Requests(_) => "requests",
            Denied::Tokens(_) => "tokens",
            Denied::Budget(_) => "budget",
        }
    }

    /// The `Retry-After` the refusal carries (`None`: waiting will not help).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Denied::Route => None,
            Denied::Concurrency(_) => Some(Duration::from_secs(1)),
            Denied::Requests(l) | Denied::Tokens(l) => Some(l.retry_after),
            Denied::Budget(e) => Some(e.reset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(edit: impl FnOnce(&mut switchyard_config::GatewayKey)) -> Arc<Tenant> {
        let mut k = switchyard_config::GatewayKey {
            name: "team-a".into(),
            hash: crate::hash_line("k"),
            requests_per_minute: None,
            tokens_per_minute: None,
            max_concurrency: None,
            routes: None,
            priority: Priority::Normal,
            daily_tokens: None,
            monthly_tokens: None,
            daily_spend_usd: None,
            monthly_spend_usd: None,
        };
        edit(&mut k);
        let routes = k.routes.clone().map(|r| r.into_iter().collect());
        Arc::new(Tenant::new(&k, routes, Arc::default()))
    }

    #[test]
    fn a_key_limited_to_some_routes_is_refused_the_others() {
        let t = key(|k| k.routes = Some(vec!["cheap".into()]));
        let (now, wall) = (Instant::now(), OffsetDateTime::now_utc());
        assert!(t.admit("cheap", 10, now, wall).is_ok());
        assert_eq!(t.admit("smart", 10, now, wall).unwrap_err(), Denied::Route);
    }

    #[test]
    fn concurrency_slots_come_back_when_admissions_end_even_when_a_rate_refuses() {
        let t = key(|k| {
            k.max_concurrency = Some(2);
            k.requests_per_minute = Some(3);
        });
        let (now, wall) = (Instant::now(), OffsetDateTime::now_utc());
        let a = t.admit("m", 1, now, wall).unwrap();
        let b = t.admit("m", 1, now, wall).unwrap();
        assert_eq!(t.admit("m", 1, now, wall).unwrap_err(), Denied::Concurrency(2));
        drop(a);
        let c = t.admit("m", 1, now, wall).unwrap();
        assert_eq!(c.remaining_requests, Some(0));
        drop((b, c));
        assert!(matches!(t.admit("m", 1, now, wall), Err(Denied::Requests(_))));
        assert_eq!(t.inflight(), 0, "the refused request gave its slot back");
    }

    #[test]
    fn a_token_rate_refuses_on_the_estimate_and_settles_on_the_usage() {
        let t = key(|k| k.tokens_per_minute = Some(1000));
        let (now, wall) = (Instant::now(), OffsetDateTime::now_utc());
        let a = t.admit("m", 400, now, wall).unwrap();
        assert_eq!(a.remaining_tokens, Some(600));
        // The provider said 400 in + 500 out: 500 more than estimated.
        a.settle(400, 500, 0.0, wall);
        assert_eq!(t.remaining(now).1, Some(100));
        assert!(matches!(t.admit("m", 200, now, wall), Err(Denied::Tokens(_))));
        assert!(t.admit("m", 100, now, wall).is_ok());
        assert_eq!(t.ledger().used(wall).0.output_tokens, 500);
    }

    #[test]
    fn a_spent_budget_refuses_until_its_window_starts_again() {
        let t = key(|k| k.daily_tokens = Some(1000));
        let (now, wall) = (Instant::now(), OffsetDateTime::now_utc());
        t.admit("m", 10, now, wall).unwrap().settle(600, 400, 0.0, wall);
        let Err(Denied::Budget(spent)) = t.admit("m", 10, now, wall) else { panic!("budget should be spent") };
        assert_eq!((spent.window, spent.what), ("daily", "tokens"));
        assert!(t.admit("m", 10, now, wall + time::Duration::days(1)).is_ok());
    }
}
