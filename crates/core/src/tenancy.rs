//! Who is asking, on the exchange: the gateway key's admission it runs
//! under, the caller a policy sees, and the places it takes at its
//! targets' quota gates (waiting in the route's queue by the key's priority).

use std::time::Duration;

use tokio::time::Instant;

use crate::exchange::Exchange;

impl Exchange {
    /// Runs under the gateway key's `admission`.
    pub fn admitted(mut self, admission: Option<switchyard_access::Admission>) -> Self {
        self.admission = admission;
        self
    }

    /// Who is asking, for the policy: the key's name, class and what it may
    /// still send (as it was let in).
    pub(crate) fn caller(&self) -> switchyard_policy_host::Caller {
        let Some(admission) = &self.admission else { return switchyard_policy_host::Caller::default() };
        switchyard_policy_host::Caller {
            tenant: Some(admission.tenant().name.clone()),
            priority: match admission.tenant().priority {
                switchyard_config::Priority::Low => switchyard_policy_host::Priority::Low,
                switchyard_config::Priority::Normal => switchyard_policy_host::Priority::Normal,
                switchyard_config::Priority::High => switchyard_policy_host::Priority::High,
            },
            requests_left: admission.remaining_requests,
            tokens_left: admission.remaining_tokens,
        }
    }

    /// Who goes first at a provider's quota: the key's priority class.
    pub(crate) fn priority(&self) -> switchyard_config::Priority {
        self.admission.as_ref().map_or(switchyard_config::Priority::Normal, |a| a.tenant().priority)
    }

    /// A place at `target`'s quota gates, waiting in the route's queue at
    /// most `[queue] max_wait_ms` and never past the route's deadline.
    pub(crate) async fn enter_quota(
        &self,
        target: u32,
    ) -> Result<crate::quota::Permits, switchyard_access::gate::Shed> {
        let quotas = &self.shared.quotas;
        let wait = quotas.max_wait.min(self.remaining());
        let started = Instant::now();
        let tokens = self.peek.estimated_input_tokens;
        let entered = quotas.enter(target, self.route, self.priority(), tokens, wait).await;
        let route = &self.shared.routes[self.route].name;
        match &entered {
            Ok(_) if started.elapsed() >= Duration::from_millis(1) => {
                self.shared.metrics.queue_wait(route, started.elapsed());
            }
            Ok(_) => {}
            Err(switchyard_access::gate::Shed::QueueFull { .. }) => self.shared.metrics.shed(route, "queue_full"),
            Err(switchyard_access::gate::Shed::Expired { .. }) => self.shared.metrics.shed(route, "expired"),
        }
        entered
    }
}
