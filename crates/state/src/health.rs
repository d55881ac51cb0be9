//! Breaker moves, Retry-After cool-downs and forced breakers, shared by
//! every instance: each move a health book makes is published on
//! `prefix:health` (and kept in the `prefix:health` hash, for an instance
//! that starts or reconnects later); each move another instance published
//! is applied to this instance's book. A request never waits for any of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_policy_host::{BreakerState, SharedMove};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::link::RedisLink;
use crate::unix_ms;

/// Moves waiting to be published; more are dropped (and counted).
const OUTBOX: usize = 4096;

/// Where moves other instances made are applied.
pub trait HealthSink: Send + Sync + 'static {
    /// Applies `shared` to the target `provider/model`, if this instance has it.
    fn apply(&self, target: &str, shared: SharedMove);
    /// The instances together counted enough failures of `target`: open
    /// its breaker here (this instance probes it and tells the others).
    fn trip(&self, target: &str);
}

/// When the instances together trip a breaker: this many failures of a
/// target, with no success between, within `window` of the first.
#[derive(Debug, Clone, Copy)]
pub struct SharedTrip {
    /// Failures (the breaker's `failures`).
    pub failures: u32,
    /// How long a count lasts from its first failure.
    pub window: Duration,
}

/// A move on the wire (JSON on `prefix:health`).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct News {
    from: String,
    target: String,
    #[serde(flatten)]
    what: What,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "move", rename_all = "snake_case")]
enum What {
    Opened { ms: u64 },
    Closed,
    Cooling { ms: u64 },
    Forced { state: Option<Forced> },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Forced {
    Open,
    Closed,
}

impl What {
    fn of(shared: SharedMove) -> What {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match shared {
            SharedMove::Opened(d) => What::Opened { ms: ms(d) },
            SharedMove::Closed => What::Closed,
            SharedMove::Cooling(d) => What::Cooling { ms: ms(d) },
            SharedMove::Forced(state) => What::Forced {
                state: match state {
                    Some(BreakerState::Open) => Some(Forced::Open),
                    Some(BreakerState::Closed) => Some(Forced::Closed),
                    _ => None,
                },
            },
            // Counted (`count`), never sent as news.
            SharedMove::Failed | SharedMove::Succeeded => What::Closed,
        }
    }

    fn shared(&self) -> SharedMove {
        match *self {
            What::Opened { ms } => SharedMove::Opened(Duration::from_millis(ms)),
            What::Closed => SharedMove::Closed,
            What::Cooling { ms } => SharedMove::Cooling(Duration::from_millis(ms)),
            What::Forced { state } => SharedMove::Forced(state.map(|f| match f {
                Forced::Open => BreakerState::Open,
                Forced::Closed => BreakerState::Closed,
            })),
        }
    }
}

/// How much health news went each way, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// Moves this instance published.
    pub sent: u64,
    /// Moves of other instances applied here.
    pub applied: u64,
    /// Moves not published: the queue was full.
    pub dropped: u64,
}

/// This instance's side of the shared health.
#[derive(Debug)]
pub struct HealthShare {
    outbox: mpsc::Sender<(String, SharedMove, Instant)>,
    sent: AtomicU64,
    applied: AtomicU64,
    dropped: AtomicU64,
}

impl HealthShare {
    /// Starts publishing what [`HealthShare::tell`] is told and applying
    /// what the other instances publish to `sink`.
    pub fn start(link: Arc<RedisLink>, sink: Arc<dyn HealthSink>, trip: SharedTrip) -> Arc<HealthShare> {
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let share = Arc::new(HealthShare {
            outbox,
            sent: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let news = link.subscribe("health");
        tokio::spawn(run(link, Arc::downgrade(&share), sink, trip, queued, news));
        share
    }

    /// Queues a move of `target` (`provider/model`) for the other instances.
    /// Never blocks: a full queue drops it (counted).
    pub fn tell(&self, target: &str, shared: SharedMove) {
        if self.outbox.try_send((target.to_owned(), shared, Instant::now())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What went each way so far.
    pub fn counts(&self) -> HealthCounts {
        HealthCounts {
            sent: self.sent.load(Ordering::Relaxed),
            applied: self.applied.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The hash field a move is kept under, and its value (`None`: remove it).
fn kept(target: &str, what: &What) -> (String, Option<String>) {
    match what {
        What::Opened { ms } => (format!("open:{target}"), Some((unix_ms() + ms).to_string())),
        What::Closed => (format!("open:{target}"), None),
        What::Cooling { ms } => (format!("cool:{target}"), Some((unix_ms() + ms).to_string())),
        What::Forced { state } => {
            (format!("forced:{target}"), state.map(|s| if s == Forced::Open { "open" } else { "closed" }.to_owned()))
        }
    }
}

async fn run(
    link: Arc<RedisLink>,
    share: std::sync::Weak<HealthShare>,
    sink: Arc<dyn HealthSink>,
    trip: SharedTrip,
    mut queued: mpsc::Receiver<(String, SharedMove, Instant)>,
    mut news: mpsc::Receiver<Vec<u8>>,
) {
    let mut comebacks = link.comebacks();
    // The latest move per target that could not be published (Redis was
    // away): published when it is back, if it still holds.
    let mut unsent: HashMap<String, (SharedMove, Instant)> = HashMap::new();
    loop {
        tokio::select! {
            told = queued.recv() => {
                let Some((target, shared, at)) = told else { return };
                if matches!(shared, SharedMove::Failed | SharedMove::Succeeded) {
                    if link.counts().up && count(&link, &target, shared, trip).await {
                        sink.trip(&target);
                    }
                    continue;
                }
                if !link.counts().up || !publish(&link, &target, shared).await {
                    unsent.insert(target, (shared, at));
                } else if let Some(share) = share.upgrade() {
                    share.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            heard = news.recv() => {
                let Some(payload) = heard else { return };
                let Ok(n) = serde_json::from_slice::<News>(&payload) else { continue };
                if n.from != link.instance() {
                    sink.apply(&n.target, n.what.shared());
                    if let Some(share) = share.upgrade() {
                        share.applied.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            back = comebacks.changed() => {
                if back.is_err() {
                    return;
                }
                for (target, (shared, at)) in std::mem::take(&mut unsent) {
                    if let Some(still) = still_holds(shared, at.elapsed()) {
                        publish(&link, &target, still).await;
                    }
                }
                resync(&link, sink.as_ref()).await;
            }
        }
    }
}

/// `shared`, made `elapsed` ago, as it stands now; `None` once it ran out.
fn still_holds(shared: SharedMove, elapsed: Duration) -> Option<SharedMove> {
    match shared {
        SharedMove::Opened(d) => d.checked_sub(elapsed).filter(|d| !d.is_zero()).map(SharedMove::Opened),
        SharedMove::Cooling(d) => d.checked_sub(elapsed).filter(|d| !d.is_zero()).map(SharedMove::Cooling),
        // A count is of now: one missed while Redis was away is not replayed.
        SharedMove::Failed | SharedMove::Succeeded => None,
        other => Some(other),
    }
}

async fn publish(link: &RedisLink, target: &str, shared: SharedMove) -> bool {
    let what = What::of(shared);
    let (field, value) = kept(target, &what);
    let news = News { from: link.instance().to_owned(), target: target.to_owned(), what };
    let Ok(json) = serde_json::to_string(&news) else { return false };
    let hash = link.key("health");
    let mut pipe = redis::pipe();
    match value {
        Some(v) => pipe.hset(&hash, field, v).ignore(),
        None => pipe.hdel(&hash, field).ignore(),
    };
    if shared == SharedMove::Closed {
        pipe.del(failures_key(link, target)).ignore();
    }
    pipe.publish(&hash, json).ignore();
    link.run_pipe::<()>("PUBLISH health", &pipe).await.is_some()
}

fn failures_key(link: &RedisLink, target: &str) -> String {
    link.key(&format!("failures:{target}"))
}

/// Counts a failure (true when it is the one that reaches `trip.failures`:
/// exactly one instance sees that) or clears the count after a success.
async fn count(link: &RedisLink, target: &str, shared: SharedMove, trip: SharedTrip) -> bool {
    let key = failures_key(link, target);
    if shared == SharedMove::Succeeded {
        link.run::<()>("DEL failures", redis::cmd("DEL").arg(&key)).await;
        return false;
    }
    let window = u64::try_from(trip.window.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut pipe = redis::pipe();
    pipe.incr(&key, 1).cmd("PEXPIRE").arg(&key).arg(window).arg("NX").ignore();
    let counted: Option<(u64,)> = link.run_pipe("INCR failures", &pipe).await;
    counted.is_some_and(|(n,)| n == u64::from(trip.failures))
}

/// Applies what the `prefix:health` hash holds (moves made while this
/// instance was away), and clears what ran out.
async fn resync(link: &RedisLink, sink: &dyn HealthSink) {
    let hash = link.key("health");
    let Some(fields) = link.run::<HashMap<String, String>>("HGETALL health", redis::cmd("HGETALL").arg(&hash)).await
    else {
        return;
    };
    let now = unix_ms();
    let mut stale = Vec::new();
    for (field, value) in fields {
        let Some((kind, target)) = field.split_once(':') else { continue };
        let left = || value.parse::<u64>().ok().and_then(|until| until.checked_sub(now)).filter(|ms| *ms > 0);
        let shared = match kind {
            "open" => left().map(|ms| SharedMove::Opened(Duration::from_millis(ms))),
            "cool" => left().map(|ms| SharedMove::Cooling(Duration::from_millis(ms))),
            "forced" if value == "open" => Some(SharedMove::Forced(Some(BreakerState::Open))),
            "forced" if value == "closed" => Some(SharedMove::Forced(Some(BreakerState::Closed))),
            _ => None,
        };
        match shared {
            Some(shared) => sink.apply(target, shared),
            None if kind != "forced" => stale.push(field),
            None => {}
        }
    }
    if !stale.is_empty() {
        link.run::<()>("HDEL health", redis::cmd("HDEL").arg(&hash).arg(stale)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_read_back_as_they_were_written() {
        for shared in [
            SharedMove::Opened(Duration::from_millis(5000)),
            SharedMove::Closed,
            SharedMove::Cooling(Duration::from_millis(1500)),
            SharedMove::Forced(Some(BreakerState::Open)),
            SharedMove::Forced(Some(BreakerState::Closed)),
            SharedMove::Forced(None),
        ] {
            let news = News { from: "a".into(), target: "p/m".into(), what: What::of(shared) };
            let json = serde_json::to_string(&news).unwrap();
            let back: News = serde_json::from_str(&json).unwrap();
            assert_eq!(back.what.shared(), shared, "{json}");
        }
        let json = serde_json::to_string(&News {
            from: "a".into(),
            target: "p/m".into(),
            what: What::of(SharedMove::Opened(Duration::from_secs(5))),
        })
        .unwrap();
        assert_eq!(json, r#"{"from":"a","target":"p/m","move":"opened","ms":5000}"#);
    }

    #[test]
    fn a_move_that_could_not_be_sent_is_sent_later_only_for_what_is_left_of_it() {
        let five = SharedMove::Opened(Duration::from_secs(5));
        assert_eq!(still_holds(five, Duration::from_secs(2)), Some(SharedMove::Opened(Duration::from_secs(3))));
        assert_eq!(still_holds(five, Duration::from_secs(6)), None);
        assert_eq!(still_holds(SharedMove::Closed, Duration::from_secs(60)), Some(SharedMove::Closed));
    }
}
