//! A provider's (or one model's) quota as a gate: `rpm`, `tpm` and
//! `max_concurrency`, enforced before a request is sent, so the provider
//! never has to answer 429. A request that finds the gate full waits in it —
//! higher priority first, first come first served within a class — until
//! its wait runs out; a client that goes away leaves at once (dropping the
//! future removes its place). How many requests of a route may wait is
//! bounded by that route's [`Waiting`].

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_config::{Priority, Quota};
use tokio::sync::oneshot;

use crate::rate::Rate;

/// One quota and the requests waiting for it.
#[derive(Debug)]
pub struct Gate {
    quota: Quota,
    rpm: Option<Rate>,
    tpm: Option<Rate>,
    state: Mutex<State>,
    /// Instances sharing the provider (`[state] backend = "redis"`): this
    /// one keeps its share of `max_concurrency`.
    members: std::sync::atomic::AtomicU32,
}

#[derive(Debug, Default)]
struct State {
    inflight: u32,
    waiting: BTreeMap<(Reverse<Priority>, u64), Waiter>,
    next: u64,
    /// A timer will look at the queue again when a rate has refilled.
    timer: bool,
}

#[derive(Debug)]
struct Waiter {
    tokens: u32,
    tx: oneshot::Sender<Permit>,
}

/// A place in a gate: released (and the next waiter let in) when dropped.
#[derive(Debug)]
pub struct Permit {
    gate: Option<Arc<Gate>>,
}

/// How many requests of one route may wait, at all its gates together.
#[derive(Debug)]
pub struct Waiting {
    now: AtomicUsize,
    max: usize,
}

impl Waiting {
    /// At most `max` at once.
    pub fn new(max: usize) -> Waiting {
        Waiting { now: AtomicUsize::new(0), max }
    }

    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.now.load(Ordering::Relaxed)
    }

    /// No request waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// Its route's queue was full (429).
    QueueFull {
        /// A fair guess of when a place frees up.
        retry_after: Duration,
    },
    /// It waited as long as it could (503).
    Expired {
        /// A fair guess of when the gate opens again.
        retry_after: Duration,
    },
}

/// Gives a waiting place back when the wait ends, however it ends.
struct Place<'a> {
    gate: &'a Gate,
    key: (Reverse<Priority>, u64),
    waiting: &'a Waiting,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.waiting.now.fetch_sub(1, Ordering::AcqRel);
        self.gate.lock().waiting.remove(&self.key);
    }
}

impl Gate {
    /// A gate enforcing `quota`.
    pub fn new(quota: Quota) -> Arc<Gate> {
        Arc::new(Gate {
            quota,
            rpm: quota.rpm.map(Rate::new),
            tpm: quota.tpm.map(Rate::new),
            state: Mutex::new(State::default()),
            members: std::sync::atomic::AtomicU32::new(1),
        })
    }

    /// `members` instances share this quota now: this one lets in at most
    /// its share of `max_concurrency` (rounded up). Rates are shared
    /// through [`crate::shared`] instead.
    pub fn share(&self, members: u32) {
        self.members.store(members.max(1), Ordering::Relaxed);
    }

    /// This instance's part of `max_concurrency`.
    fn max_concurrency(&self) -> Option<u32> {
        let members = self.members.load(Ordering::Relaxed).max(1);
        self.quota.max_concurrency.map(|max| max.div_ceil(members))
    }

    /// The quota it enforces.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (In flight, waiting) now.
    pub fn load(&self) -> (u32, usize) {
        let s = self.lock();
        (s.inflight, s.waiting.len())
    }

    /// Takes a place for a request of `tokens` if the quota has one now;
    /// else `Err(Some(wait))` when only a rate is short (for `wait`), or
    /// `Err(None)` when the concurrency is full.
    fn try_take(&self, s: &mut State, tokens: u32, now: Instant) -> Result<(), Option<Duration>> {
        if self.max_concurrency().is_some_and(|max| s.inflight >= max) {
            return Err(None);
        }
        let short = |rate: &Option<Rate>, n| rate.as_ref().and_then(|r| r.check(n, now).err()).map(|l| l.retry_after);
        if let Some(wait) = short(&self.rpm, 1).max(short(&self.tpm, tokens)) {
            return Err(Some(wait.max(Duration::from_millis(1))));
        }
        if let Some(rpm) = &self.rpm {
            let _ = rpm.take(1, now);
        }
        if let Some(tpm) = &self.tpm {
            let _ = tpm.take(tokens, now);
        }
        s.inflight += 1;
        Ok(())
    }

    /// A place now, if the quota has one and nobody of `priority` or
    /// higher waits (a hedge's second attempt, which never waits).
    pub fn try_enter(self: &Arc<Self>, priority: Priority, tokens: u32) -> Option<Permit> {
        let mut s = self.lock();
        let ahead = s.waiting.keys().next().is_some_and(|(Reverse(first), _)| *first >= priority);
        (!ahead && self.try_take(&mut s, tokens, Instant::now()).is_ok()).then(|| Permit { gate: Some(self.clone()) })
    }

    /// Waits (up to `wait`, in `priority` order) for a place for a request of
    /// `tokens` estimated tokens; `waiting` bounds the route's queue.
    pub async fn enter(
        self: &Arc<Self>,
        priority: Priority,
        tokens: u32,
        wait: Duration,
        waiting: &Waiting,
    ) -> Result<Permit, Shed> {
        let (key, rx) = {
            let mut s = self.lock();
            let now = Instant::now();
            // Nobody may pass those already waiting (of its class or higher).
            let ahead = s.waiting.keys().next().is_some_and(|(Reverse(first), _)| *first >= priority);
            let refused = match ahead {
                true => None,
                false => match self.try_take(&mut s, tokens, now) {
                    Ok(()) => return Ok(Permit { gate: Some(self.clone()) }),
                    Err(wait) => wait,
                },
            };
            let retry_after = refused.unwrap_or(Duration::from_secs(1)).max(Duration::from_secs(1));
            if wait.is_zero() {
                return Err(Shed::Expired { retry_after });
            }
            let taken =
                waiting.now.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < waiting.max).then_some(n + 1));
            if taken.is_err() {
                return Err(Shed::QueueFull { retry_after });
            }
            let (tx, rx) = oneshot::channel();
            let key = (Reverse(priority), s.next);
            s.next += 1;
            s.waiting.insert(key, Waiter { tokens, tx });
            self.pump(&mut s);
            (key, rx)
        };
        let place = Place { gate: self, key, waiting };
        let granted = tokio::time::timeout(wait, rx).await;
        drop(place);
        match granted {
            Ok(Ok(permit)) => Ok(permit),
            // (A permit granted as the wait ran out is dropped with the
            // channel, which gives its place to the next waiter.)
            _ => {
                let rpm = self.rpm.as_ref().and_then(|r| r.check(1, Instant::now()).err());
                let retry_after = rpm.map_or(Duration::ZERO, |l| l.retry_after).max(Duration::from_secs(1));
                Err(Shed::Expired { retry_after })
            }
        }
    }

    /// Lets waiters in, best first, while the quota has room; when only a
    /// rate is short, looks again once it has refilled.
    fn pump(self: &Arc<Self>, s: &mut State) {
        let now = Instant::now();
        while let Some((&key, waiter)) = s.waiting.iter().next() {
            if waiter.tx.is_closed() {
                s.waiting.remove(&key);
                continue;
            }
            let tokens = waiter.tokens;
            match self.try_take(s, tokens, now) {
                Ok(()) => {
                    let waiter = s.waiting.remove(&key).expect("the first waiter is there");
                    if let Err(mut permit) = waiter.tx.send(Permit { gate: Some(self.clone()) }) {
                        // Gone since: undo, without re-entering the lock.
                        permit.gate = None;
                        self.undo(s, tokens);
                    }
                }
                Err(Some(wait)) => {
                    // (Outside a runtime — a permit dropped as the process
                    // ends — nobody is left to wake.)
                    if let (false, Ok(runtime)) = (s.timer, tokio::runtime::Handle::try_current()) {
                        s.timer = true;
                        let gate = Arc::downgrade(self);
                        runtime.spawn(async move {
                            tokio::time::sleep(wait).await;
                            if let Some(gate) = gate.upgrade() {
                                let mut s = gate.lock();
                                s.timer = false;
                                gate.pump(&mut s);
                            }
                        });
                    }
                    break;
                }
                Err(None) => break,
            }
        }
    }

    fn undo(&self, s: &mut State, tokens: u32) {
        s.inflight -= 1;
        if let Some(rpm) = &self.rpm {
            rpm.settle(-1);
        }
        if let Some(tpm) = &self.tpm {
            tpm.settle(-i64::from(tokens));
        }
    }

    /// Corrects the token rate by `delta` (the answer's real tokens minus
    /// the estimate it entered with).
    pub fn settle(&self, delta: i64) {
        if let Some(tpm) = &self.tpm {
            tpm.settle(delta);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            let mut s = gate.lock();
            s.inflight -= 1;
            gate.pump(&mut s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(max_concurrency: Option<u32>, rpm: Option<u32>) -> Quota {
        Quota { rpm, tpm: None, max_concurrency }
    }

    #[tokio::test]
    async fn waiters_are_let_in_by_priority_then_in_arrival_order() {
        let gate = Gate::new(quota(Some(1), None));
        let waiting = Arc::new(Waiting::new(100));
        let holder = gate.enter(Priority::Normal, 1, Duration::ZERO, &waiting).await.unwrap();
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (i, priority) in
            [Priority::Low, Priority::Normal, Priority::High, Priority::Normal, Priority::High].into_iter().enumerate()
        {
            let (gate, queue, order_tx) = (gate.clone(), waiting.clone(), order_tx.clone());
            tasks.push(tokio::spawn(async move {
                let permit = gate.enter(priority, 1, Duration::from_secs(10), &queue).await.unwrap();
                order_tx.send(i).unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(permit);
            }));
            // Arrival order is the spawn order.
            while waiting.len() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(gate.load(), (1, 5));
        drop(holder);
        for task in tasks {
            task.await.unwrap();
        }
        let got: Vec<usize> = std::iter::from_fn(|| order.try_recv().ok()).collect();
        assert_eq!(got, vec![2, 4, 1, 3, 0], "high (FIFO), normal (FIFO), low");
        assert_eq!(gate.load(), (0, 0));
    }

    #[tokio::test]
    async fn a_full_queue_sheds_and_an_expired_wait_sheds_and_a_gone_client_leaves_at_once() {
        let gate = Gate::new(quota(Some(1), None));
        let waiting = Waiting::new(1);
        let _holder = gate.enter(Priority::High, 1, Duration::ZERO, &waiting).await.unwrap();
        let shed = gate.enter(Priority::High, 1, Duration::ZERO, &waiting).await.unwrap_err();
        assert!(matches!(shed, Shed::Expired { .. }), "no wait allowed: shed at once");
        let expired = gate.enter(Priority::High, 1, Duration::from_millis(20), &waiting).await.unwrap_err();
        assert!(matches!(expired, Shed::Expired { retry_after } if retry_after >= Duration::from_secs(1)));
        assert!(waiting.is_empty(), "its place was given back");
        // One waits; a second finds the route's queue full.
        let first = gate.enter(Priority::Normal, 1, Duration::from_secs(10), &waiting);
        let mut first = Box::pin(first);
        assert!(futures_poll_once(&mut first).await.is_none());
        assert_eq!(waiting.len(), 1);
        let full = gate.enter(Priority::Normal, 1, Duration::from_secs(10), &waiting).await.unwrap_err();
        assert!(matches!(full, Shed::QueueFull { .. }));
        // The client goes away: its place is gone at once.
        drop(first);
        assert_eq!((waiting.len(), gate.load().1), (0, 0));
    }

    #[tokio::test]
    async fn an_rpm_quota_lets_waiters_in_as_it_refills() {
        let gate = Gate::new(quota(None, Some(600)));
        let waiting = Waiting::new(1000);
        let started = std::time::Instant::now();
        let mut permits = Vec::new();
        for _ in 0..603 {
            permits.push(gate.enter(Priority::Normal, 1, Duration::from_secs(60), &waiting).await.unwrap());
        }
        // 600 at once, then one each 100 ms.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(290) && waited < Duration::from_secs(2), "{waited:?}");
    }

    #[test]
    fn a_tpm_quota_is_charged_the_estimate_and_corrected_by_the_real_count() {
        let gate = Gate::new(Quota { rpm: None, tpm: Some(600), max_concurrency: None });
        let permits: Vec<_> = (0..6).map(|_| gate.try_enter(Priority::Normal, 100)).collect();
        assert!(permits.iter().all(Option::is_some), "600 tokens: six of 100");
        assert!(gate.try_enter(Priority::Normal, 100).is_none());
        // Each used 50: 300 given back.
        for _ in 0..6 {
            gate.settle(50 - 100);
        }
        assert_eq!((0..3).filter_map(|_| gate.try_enter(Priority::Normal, 100)).count(), 3);
        assert!(gate.try_enter(Priority::Normal, 100).is_none());
    }

    /// Polls `fut` once: `Some` if it finished.
    async fn futures_poll_once<F: Future + Unpin>(fut: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *fut).poll(cx) {
            std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await
    }
}
