//! Active probes of an open breaker, taken in turn: before probing a target,
//! an instance takes the target's lease for one probe interval; while
//! another instance holds it, this one skips its turn — N instances send
//! one probe per interval, not N. With Redis away, each probes on its own.

use std::sync::Arc;
use std::time::Duration;

use crate::link::RedisLink;

/// The probe leases in the link's Redis.
#[derive(Debug)]
pub struct ProbeLeases {
    link: Arc<RedisLink>,
}

impl ProbeLeases {
    /// Leases in `link`'s Redis.
    pub fn new(link: Arc<RedisLink>) -> ProbeLeases {
        ProbeLeases { link }
    }

    /// Whether this instance probes `target` (`provider/model`) now: it took
    /// the lease for `term`, or Redis did not answer.
    pub async fn take(&self, target: &str, term: Duration) -> bool {
        if !self.link.counts().up {
            return true;
        }
        let ms = u64::try_from(term.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.link.key(&format!("probe:{target}"))).arg(self.link.instance()).arg("NX").arg("PX").arg(ms);
        match self.link.run::<Option<String>>("SET probe lease", &cmd).await {
            Some(taken) => taken.is_some(),
            None => true,
        }
    }
}
