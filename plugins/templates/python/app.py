"""{{name}}: a Switchyard failover policy in Python.

Targets in route order, unavailable ones (a Retry-After running or the
breaker open) last; after a retryable failure move on at once to an untried
available target; when every target was tried, back off with full jitter and
never retry a target before its Retry-After; give up with a 503 when the wait
does not fit the deadline. A stream that broke after reaching the client is
continued on another available target (restarted when the break fell in a
tool call or a continuation was refused), at most twice. Settings: `{"max_attempts": N}` (default 4).
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import (
    AttemptLimits,
    Degrade_Unavailable,
    NextStep_Accept,
    NextStep_Degrade,
    NextStep_Retry,
    OutcomeKind,
    Plan,
    Recovery_Continue,
    Recovery_End,
    Recovery_Restart,
    Retry,
    RouteDecision_Send,
)

RETRYABLE = {
    OutcomeKind.CONNECT_ERROR,
    OutcomeKind.TIMEOUT,
    OutcomeKind.RESET,
    OutcomeKind.RATE_LIMITED,
    OutcomeKind.OVERLOADED,
    OutcomeKind.SERVER_ERROR,
    OutcomeKind.AUTH,
}

# What `init` derived from its arguments (the same in every instance).
max_attempts = 4
routes = []


def wait_ms(target):
    """Milliseconds the provider asked us to wait before trying `target` again."""
    health = host.health(target)
    return (health.retry_after_ms or 0) if health else 0


def available(target):
    """No Retry-After running and the breaker not open (asked of the host,
    which keeps both; cheaper than reading `host.health`)."""
    return host.available(target)


class WitWorld(wit_world.WitWorld):
    def init(self, settings, topology):
        global max_attempts, routes
        try:
            parsed = json.loads(settings)
        except ValueError as e:
            raise Err(f"settings are not JSON: {e}")
        value = parsed.get("max_attempts", 4) if isinstance(parsed, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise Err(f"max_attempts must be a whole number above 0 in {settings}")
        max_attempts = value
        routes = [list(route.targets) for route in topology.routes]

    def route(self, request):
        # One health call per target (each is a call into the host).
        up, down = [], []
        for target in routes[request.route]:
            (up if available(target) else down).append(target)
        # Attempt limits left to the route's config (`first_token_timeout_ms`, ...).
        limits = AttemptLimits(connect_ms=None, first_token_ms=None, idle_ms=None, answer_ms=None)
        return RouteDecision_Send(Plan(up + down, limits, hedge_after_ms=None))

    def on_attempt(self, request, outcome):
        if outcome.kind not in RETRYABLE:
            return NextStep_Accept()
        give_up = NextStep_Degrade(Degrade_Unavailable(max(outcome.retry_after_ms or 1000, 1000)))
        if outcome.attempt >= max_attempts:
            return give_up
        targets = routes[request.route]
        for target in targets:
            if target not in outcome.tried and available(target):
                return NextStep_Retry(Retry(target, 0))
        # Every target tried: the one free soonest, after full-jitter backoff.
        ceiling = min(100 * (1 << min(outcome.attempt, 5)), 2000)
        backoff = int(host.random() * ceiling)
        wait, target = min((max(wait_ms(t), backoff), t) for t in targets)
        if wait < request.deadline_ms // 2:
            return NextStep_Retry(Retry(target, wait))
        return give_up

    def on_stream_break(self, request, broken):
        if broken.recoveries >= 2:
            return Recovery_End()
        others = [t for t in routes[request.route] if t != broken.target and available(t)]
        retry = Retry(others[0] if others else broken.target, 0)
        # A partial tool call cannot be continued, and a target that refused a
        # partial assistant turn (a 400) is asked the question again instead.
        refused = broken.failed_recovery is not None and broken.failed_recovery.kind == OutcomeKind.INVALID_REQUEST
        if broken.in_tool_call or refused:
            return Recovery_Restart(retry)
        return Recovery_Continue(retry)
