//! The default Switchyard policy: ordered failover.
//!
//! * `route`: the route's targets in config order, those whose provider asked
//!   us to wait (Retry-After still running) moved to the back.
//! * `on-attempt`: success and errors no retry can fix (invalid request,
//!   content filtered) go to the client as they are. A transient failure of
//!   a target is retried on that target once (`same_target_retries`): after
//!   a short full-jitter backoff for a 5xx, or after the provider's
//!   Retry-After when it is at most `max_same_target_wait_ms` and fits the
//!   deadline. Other retryable failures (connect error, timeout, reset, 429
//!   with a long or no Retry-After) move on to the next untried target at once; when every target has been tried, the one that
//!   can be tried soonest is retried after `max(Retry-After, full-jitter
//!   backoff)`, unless that wait does not fit in the request's deadline: then
//!   the client gets a clean 503 with Retry-After. Auth and context-length
//!   failures move to another target, never the same one. At most
//!   `max_attempts` attempts per request.
//!
//! * `on-stream-break`: a stream that broke after reaching the client is
//!   continued on the route's next available target (the delivered text as a
//!   partial assistant turn), restarted and spliced when that target refuses
//!   a partial turn or a tool call broke; at most `max_recoveries` per request.
//!
//! Settings (`[policies.failover]`), all optional:
//! `max_attempts` (4), `base_backoff_ms` (100), `max_backoff_ms` (2000),
//! `same_target_retries` (1), `max_same_target_wait_ms` (5000), `recovery`
//! (`"continue"`, or `"restart"`, `"off"`), `max_recoveries` (2), and
//! `connect_timeout_ms`, `first_token_timeout_ms`, `idle_timeout_ms`,
//! `answer_timeout_ms` (unset: the route's limits).

use std::sync::OnceLock;

use switchyard_policy_sdk::*;

/// What `init` derived from its arguments; identical in every instance.
struct Config {
    settings: FailoverSettings,
    topology: Topology,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

fn config() -> &'static Config {
    CONFIG.get().expect("init runs before any decision")
}

struct Failover;

impl Guest for Failover {
    fn init(settings: String, topology: Topology) -> Result<(), String> {
        let settings = FailoverSettings::parse("failover", &settings)?;
        let _ = CONFIG.set(Config { settings, topology });
        Ok(())
    }

    fn route(request: RequestInfo) -> RouteDecision {
        let cfg = config();
        let route = &cfg.topology.routes[request.route as usize];
        // Targets with a running Retry-After or an open breaker keep their
        // order, at the back.
        let targets = available_first(&route.targets);
        cfg.settings.send(targets)
    }

    fn on_attempt(request: RequestInfo, outcome: AttemptOutcome) -> NextStep {
        let cfg = config();
        let route = &cfg.topology.routes[request.route as usize];
        cfg.settings.next_step(route, &request, &outcome)
    }

    fn on_stream_break(request: RequestInfo, broken: StreamBreak) -> Recovery {
        let cfg = config();
        let route = &cfg.topology.routes[request.route as usize];
        cfg.settings.recover(route, &broken)
    }
}

export_policy!(Failover);
