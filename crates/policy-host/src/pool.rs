//! The warm instances of one policy version, sized by demand. At most
//! `max_live` instances exist at once (in use or idle): a call that finds
//! none idle makes one while fewer exist, else waits for one to come back
//! (a decision holds its instance for microseconds). Instances idle for
//! [`IDLE_FOR`] are dropped when the next call ends, which keeps one warm. A Python or
//! JavaScript instance is ~10 MB of linear memory, so this bound, not the
//! request rate, is what a loaded policy costs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// An idle instance unused this long is dropped (all but the last one).
pub(crate) const IDLE_FOR: Duration = Duration::from_secs(30);

pub(crate) struct Pool<T> {
    /// Idle instances, the most recently returned last (taken first).
    idle: Mutex<Vec<Idle<T>>>,
    /// One permit per live instance.
    live: Arc<Semaphore>,
    /// Told when an instance comes back.
    returned: Notify,
    max_live: usize,
}

struct Idle<T> {
    item: T,
    permit: OwnedSemaphorePermit,
    since: Instant,
}

/// An instance checked out of the pool (it counts as live until dropped or given back).
pub(crate) struct Live<T> {
    item: T,
    permit: OwnedSemaphorePermit,
}

impl<T> std::ops::Deref for Live<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.item
    }
}

impl<T> std::ops::DerefMut for Live<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.item
    }
}

impl<T> Pool<T> {
    pub fn new(max_live: usize) -> Pool<T> {
        let max_live = max_live.max(1);
        Pool {
            idle: Mutex::new(Vec::new()),
            live: Arc::new(Semaphore::new(max_live)),
            returned: Notify::new(),
            max_live,
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle<T>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle instance, else a new one from `make` while fewer than
    /// `max_live` exist, else the next one given back.
    pub async fn take<E, F: Future<Output = Result<T, E>>>(&self, make: impl FnOnce() -> F) -> Result<Live<T>, E> {
        loop {
            let back = self.returned.notified();
            tokio::pin!(back);
            back.as_mut().enable();
            if let Some(Idle { item, permit, .. }) = self.idle().pop() {
                return Ok(Live { item, permit });
            }
            if let Ok(permit) = self.live.clone().try_acquire_owned() {
                return Ok(Live { item: make().await?, permit });
            }
            tokio::select! {
                biased;
                () = &mut back => continue,
                permit = self.live.clone().acquire_owned() => {
                    let permit = permit.expect("the pool's semaphore is never closed");
                    return Ok(Live { item: make().await?, permit });
                }
            }
        }
    }

    /// A new instance from `make`: room is made by dropping the oldest idle
    /// instance when need be, else it waits for an instance in use to end.
    pub async fn fresh<E, F: Future<Output = Result<T, E>>>(&self, make: impl FnOnce() -> F) -> Result<Live<T>, E> {
        let permit = loop {
            if let Ok(permit) = self.live.clone().try_acquire_owned() {
                break permit;
            }
            let oldest = {
                let mut idle = self.idle();
                (!idle.is_empty()).then(|| idle.remove(0))
            };
            if oldest.is_none() {
                break self.live.clone().acquire_owned().await.expect("the pool's semaphore is never closed");
            }
        };
        Ok(Live { item: make().await?, permit })
    }

    /// Puts `instance` back for the next call; drops instances idle past
    /// [`IDLE_FOR`] (keeping one).
    pub fn give_back(&self, instance: Live<T>) {
        let now = Instant::now();
        let Live { item, permit } = instance;
        let stale = {
            let mut idle = self.idle();
            let keep_from = idle.iter().take_while(|i| now.duration_since(i.since) >= IDLE_FOR).count();
            let stale: Vec<Idle<T>> = idle.drain(..keep_from).collect();
            idle.push(Idle { item, permit, since: now });
            stale
        };
        // (Dropped outside the lock: freeing a linear memory is not free.)
        drop(stale);
        self.returned.notify_one();
    }

    /// `f` over the idle instances.
    pub fn each_idle<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &T>) -> R) -> R {
        let idle = self.idle();
        f(&mut idle.iter().map(|i| &i.item))
    }

    /// Instances alive now (in use or idle).
    pub fn live(&self) -> usize {
        self.max_live - self.live.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn make(n: &std::sync::atomic::AtomicUsize) -> Result<usize, ()> {
        Ok(n.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    }

    #[tokio::test]
    async fn calls_share_instances_up_to_the_bound_then_wait_for_one() {
        let made = std::sync::atomic::AtomicUsize::new(0);
        let pool = Pool::new(2);
        let a = pool.take(|| make(&made)).await.unwrap();
        let b = pool.take(|| make(&made)).await.unwrap();
        assert_eq!(pool.live(), 2);
        // A third call waits: no third instance is made.
        let third = pool.take(|| make(&made));
        tokio::pin!(third);
        assert!(tokio::time::timeout(Duration::from_millis(20), third.as_mut()).await.is_err());
        pool.give_back(a);
        let c = third.await.unwrap();
        assert_eq!(*c, 0, "the instance given back");
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 2);
        drop(b);
        assert_eq!(pool.live(), 1, "a dropped instance frees its place");
        pool.give_back(pool.fresh(|| make(&made)).await.unwrap());
        let fresh = pool.fresh(|| make(&made)).await.unwrap();
        assert_eq!((*fresh, pool.live()), (3, 2), "a fresh one when the pool is full: the idle one made room");
        drop(fresh);
        pool.give_back(c);
        assert_eq!(*pool.take(|| make(&made)).await.unwrap(), 0, "the idle one is reused");
    }

    #[tokio::test]
    async fn instances_idle_too_long_are_dropped_but_one_stays() {
        let made = std::sync::atomic::AtomicUsize::new(0);
        let pool = Pool::new(4);
        let (a, b, c) = (
            pool.take(|| make(&made)).await.unwrap(),
            pool.take(|| make(&made)).await.unwrap(),
            pool.take(|| make(&made)).await.unwrap(),
        );
        pool.give_back(a);
        pool.give_back(b);
        assert_eq!(pool.live(), 3);
        // Both have been idle for IDLE_FOR (set back rather than waited for).
        let old = Instant::now().checked_sub(IDLE_FOR).expect("a machine up for 30 s");
        pool.idle().iter_mut().for_each(|i| i.since = old);
        pool.give_back(c);
        assert_eq!(pool.live(), 1, "the two stale ones went, the one just back stays");
    }
}
