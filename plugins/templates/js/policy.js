// {{name}}: a Switchyard failover policy in JavaScript.
//
// Targets in route order, unavailable ones (a Retry-After running or the
// breaker open) last; after a retryable failure move on at once to an untried
// available target; when every target was tried, back off with full jitter and
// never retry a target before its Retry-After; give up with a 503 when the wait
// does not fit the deadline. A stream that broke after reaching the client is
// continued on another available target (restarted when the break fell in a
// tool call or a continuation was refused), at most twice. Settings: `{"max_attempts": N}` (default 4).

import { available as hostAvailable, health, random } from "switchyard:policy/host@0.3.0";

const RETRYABLE = new Set([
  "connect-error",
  "timeout",
  "reset",
  "rate-limited",
  "overloaded",
  "server-error",
  "auth",
]);

// What `init` derived from its arguments (the same in every instance).
let maxAttempts = 4;
let routes = [];

/** Milliseconds the provider asked us to wait before trying `target` again. */
function waitMs(target) {
  return health(target)?.retryAfterMs ?? 0;
}

/** No Retry-After running and the breaker not open (asked of the host, which keeps both;
 * cheaper than reading `health`). */
function available(target) {
  return hostAvailable(target);
}

export function init(settings, topology) {
  let parsed;
  try {
    parsed = JSON.parse(settings);
  } catch (e) {
    throw `settings are not JSON: ${e.message}`;
  }
  const value = parsed?.max_attempts ?? 4;
  if (!Number.isInteger(value) || value < 1) {
    throw `max_attempts must be a whole number above 0 in ${settings}`;
  }
  maxAttempts = value;
  routes = topology.routes.map((route) => Array.from(route.targets));
}

export function route(request) {
  // One health call per target (each is a call into the host).
  const up = [];
  const down = [];
  for (const target of routes[request.route]) {
    (available(target) ? up : down).push(target);
  }
  // Attempt limits left to the route's config (`first_token_timeout_ms`, ...).
  const limits = { connectMs: undefined, firstTokenMs: undefined, idleMs: undefined, answerMs: undefined };
  return { tag: "send", val: { targets: up.concat(down), limits, hedgeAfterMs: undefined } };
}

export function onAttempt(request, outcome) {
  if (!RETRYABLE.has(outcome.kind)) {
    return { tag: "accept" };
  }
  const giveUp = { tag: "degrade", val: { tag: "unavailable", val: Math.max(outcome.retryAfterMs ?? 1000, 1000) } };
  if (outcome.attempt >= maxAttempts) {
    return giveUp;
  }
  const targets = routes[request.route];
  const tried = Array.from(outcome.tried);
  const next = targets.find((t) => !tried.includes(t) && available(t));
  if (next !== undefined) {
    return { tag: "retry", val: { target: next, delayMs: 0 } };
  }
  // Every target tried: the one free soonest, after full-jitter backoff.
  const ceiling = Math.min(100 * 2 ** Math.min(outcome.attempt, 5), 2000);
  const backoff = Math.floor(random() * ceiling);
  let best = undefined;
  for (const target of targets) {
    const wait = Math.max(waitMs(target), backoff);
    if (best === undefined || wait < best.wait || (wait === best.wait && target < best.target)) {
      best = { wait, target };
    }
  }
  if (best.wait < Math.floor(request.deadlineMs / 2)) {
    return { tag: "retry", val: { target: best.target, delayMs: best.wait } };
  }
  return giveUp;
}

export function onStreamBreak(request, broken) {
  if (broken.recoveries >= 2) {
    return { tag: "end" };
  }
  const others = routes[request.route].filter((t) => t !== broken.target && available(t));
  const retry = { target: others.length > 0 ? others[0] : broken.target, delayMs: 0 };
  // A partial tool call cannot be continued, and a target that refused a
  // partial assistant turn (a 400) is asked the question again instead.
  const refused = broken.failedRecovery?.kind === "invalid-request";
  return { tag: broken.inToolCall || refused ? "restart" : "continue", val: retry };
}
