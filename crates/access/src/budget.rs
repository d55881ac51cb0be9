//! Daily and monthly budgets of a key (`daily_tokens`, `monthly_tokens`,
//! `daily_spend_usd`, `monthly_spend_usd`) and what the key has used: tokens
//! as providers report them, spend priced by the target's per-million
//! prices. Windows are UTC calendar days and months.

use std::sync::Mutex;
use std::time::Duration;

use time::{Date, OffsetDateTime, Time};

/// A key's budgets, as configured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budgets {
    /// Tokens per UTC day.
    pub daily_tokens: Option<u64>,
    /// Tokens per calendar month.
    pub monthly_tokens: Option<u64>,
    /// US dollars per UTC day.
    pub daily_usd: Option<f64>,
    /// US dollars per calendar month.
    pub monthly_usd: Option<f64>,
}

impl Budgets {
    /// Whether any budget is set.
    pub fn any(&self) -> bool {
        self.daily_tokens.is_some()
            || self.monthly_tokens.is_some()
            || self.daily_usd.is_some()
            || self.monthly_usd.is_some()
    }
}

/// A budget that is spent: which, and when its window starts again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exhausted {
    /// `"daily"` or `"monthly"`.
    pub window: &'static str,
    /// `"tokens"` or `"spend"`.
    pub what: &'static str,
    /// The budget (tokens, or US dollars).
    pub limit: f64,
    /// Until the window starts again.
    pub reset: Duration,
}

/// What a key used: this day, this month, and since the gateway started.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Used {
    /// Requests let in.
    pub requests: u64,
    /// Input tokens, as providers reported them.
    pub input_tokens: u64,
    /// Output tokens, as providers reported them.
    pub output_tokens: u64,
    /// US dollars, by the targets' prices.
    pub spend_usd: f64,
}

impl Used {
    fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    fn add(&mut self, other: &Used) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.spend_usd += other.spend_usd;
    }
}

/// A key's usage book, kept across config reloads (by the key's name).
#[derive(Debug, Default)]
pub struct Ledger {
    inner: Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    day: Option<Date>,
    today: Used,
    this_month: Used,
    total: Used,
}

fn month_of(date: Date) -> (i32, time::Month) {
    (date.year(), date.month())
}

impl Windows {
    /// Starts a new day or month when `now` is in one.
    fn roll(&mut self, today: Date) {
        match self.day {
            Some(day) if day == today => {}
            Some(day) => {
                if month_of(day) != month_of(today) {
                    self.this_month = Used::default();
                }
                self.today = Used::default();
                self.day = Some(today);
            }
            None => self.day = Some(today),
        }
    }
}

fn until_tomorrow(now: OffsetDateTime) -> Duration {
    let tomorrow = now.date().next_day().map(|d| d.with_time(Time::MIDNIGHT).assume_utc());
    tomorrow.map_or(Duration::from_secs(86_400), |t| (t - now).try_into().unwrap_or_default())
}

fn until_next_month(now: OffsetDateTime) -> Duration {
    let (year, month) = month_of(now.date());
    let (year, month) =
        if month == time::Month::December { (year + 1, time::Month::January) } else { (year, month.next()) };
    let first = Date::from_calendar_date(year, month, 1).map(|d| d.with_time(Time::MIDNIGHT).assume_utc());
    first.map_or(Duration::from_secs(86_400), |t| (t - now).try_into().unwrap_or_default())
}

impl Ledger {
    /// Whether `budgets` leave room for another request at `now`.
    pub fn check(&self, budgets: &Budgets, now: OffsetDateTime) -> Result<(), Exhausted> {
        if !budgets.any() {
            return Ok(());
        }
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        w.roll(now.date());
        let day = |what, limit: f64| Exhausted { window: "daily", what, limit, reset: until_tomorrow(now) };
        let month = |what, limit: f64| Exhausted { window: "monthly", what, limit, reset: until_next_month(now) };
        if let Some(limit) = budgets.daily_tokens.filter(|&l| w.today.tokens() >= l) {
            return Err(day("tokens", limit as f64));
        }
        if let Some(limit) = budgets.daily_usd.filter(|&l| w.today.spend_usd >= l) {
            return Err(day("spend", limit));
        }
        if let Some(limit) = budgets.monthly_tokens.filter(|&l| w.this_month.tokens() >= l) {
            return Err(month("tokens", limit as f64));
        }
        if let Some(limit) = budgets.monthly_usd.filter(|&l| w.this_month.spend_usd >= l) {
            return Err(month("spend", limit));
        }
        Ok(())
    }

    /// Records `used` at `now`.
    pub fn record(&self, used: Used, now: OffsetDateTime) {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        w.roll(now.date());
        w.today.add(&used);
        w.this_month.add(&used);
        w.total.add(&used);
    }

    /// (today, this month, since start) at `now`.
    pub fn used(&self, now: OffsetDateTime) -> (Used, Used, Used) {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        w.roll(now.date());
        (w.today, w.this_month, w.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `y-m-d h:00 UTC`.
    fn at(y: i32, m: u8, d: u8, h: u8) -> OffsetDateTime {
        let month = time::Month::try_from(m).unwrap();
        Date::from_calendar_date(y, month, d).unwrap().with_hms(h, 0, 0).unwrap().assume_utc()
    }

    fn tokens(n: u64) -> Used {
        Used { requests: 1, input_tokens: n, output_tokens: 0, spend_usd: 0.0 }
    }

    #[test]
    fn a_daily_token_budget_is_spent_then_starts_again_at_midnight_utc() {
        let ledger = Ledger::default();
        let budgets = Budgets { daily_tokens: Some(100), monthly_tokens: Some(250), ..Budgets::default() };
        let morning = at(2026, 11, 26, 9);
        assert!(ledger.check(&budgets, morning).is_ok());
        ledger.record(tokens(100), morning);
        let spent = ledger.check(&budgets, morning).unwrap_err();
        assert_eq!((spent.window, spent.what, spent.limit), ("daily", "tokens", 100.0));
        assert_eq!(spent.reset, Duration::from_secs(15 * 3600));
        let next_day = at(2026, 11, 27, 0);
        assert!(ledger.check(&budgets, next_day).is_ok());
        ledger.record(tokens(100), next_day);
        ledger.record(tokens(50), at(2026, 11, 28, 0));
        let month = ledger.check(&budgets, at(2026, 11, 28, 12)).unwrap_err();
        assert_eq!((month.window, month.what), ("monthly", "tokens"));
        assert_eq!(month.reset, Duration::from_secs(2 * 86_400 + 12 * 3600), "until December 1st");
        assert!(ledger.check(&budgets, at(2026, 12, 1, 0)).is_ok());
        assert_eq!(ledger.used(at(2026, 12, 1, 0)).2.input_tokens, 250);
    }

    #[test]
    fn a_spend_budget_counts_dollars_and_december_rolls_into_january() {
        let ledger = Ledger::default();
        let budgets = Budgets { monthly_usd: Some(1.0), ..Budgets::default() };
        let when = at(2026, 12, 31, 23);
        ledger.record(Used { requests: 1, input_tokens: 0, output_tokens: 0, spend_usd: 1.0 }, when);
        let spent = ledger.check(&budgets, when).unwrap_err();
        assert_eq!((spent.window, spent.what, spent.reset), ("monthly", "spend", Duration::from_secs(3600)));
        assert!(ledger.check(&budgets, at(2027, 1, 1, 0)).is_ok());
    }
}
