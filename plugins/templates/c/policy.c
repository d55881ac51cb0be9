// {{name}}: a Switchyard failover policy in C.
//
// Targets in route order, unavailable ones (a Retry-After running or the
// breaker open) last; after a retryable failure move on at once to an untried
// available target; when every target was tried, back off with full jitter and
// never retry a target before its Retry-After; give up with a 503 when the wait
// does not fit the deadline. A stream that broke after reaching the client is
// continued on another available target (restarted when the break fell in a
// tool call or a continuation was refused), at most twice. Settings:
// `{"max_attempts": N}` (default 4).
//
// `gen/policy.h` is generated from `wit/policy.wit` by `wit-bindgen c` (see
// build.sh). Ownership follows wit-bindgen's C rules: arguments handed to an
// export belong to it (free them or keep them); lists returned are allocated
// with malloc and freed by the generated post-return functions.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/policy.h"

typedef switchyard_policy_types_target_health_t target_health_t;

// What `init` derived from its arguments (the same in every instance).
static uint32_t max_attempts = 4;
static policy_topology_t topology;

static bool is_retryable(switchyard_policy_types_outcome_kind_t kind) {
  switch (kind) {
    case SWITCHYARD_POLICY_TYPES_OUTCOME_KIND_CONNECT_ERROR:
    case SWITCHYARD_POLICY_TYPES_OUTCOME_KIND_TIMEOUT:
    case SWITCHYARD_POLICY_TYPES_OUTCOME_KIND_RESET:
    case SWITCHYARD_POLICY_TYPES_OUTCOME_KIND_RATE_LIMITED:
    case SWITCHYARD_POLICY_TYPES_OUTCOME_KIND_OVERLOADED:
    case SWITCHYARD_POLICY_TYPES_OUTCOME_KIND_SERVER_ERROR:
    case SWITCHYARD_POLICY_TYPES_OUTCOME_KIND_AUTH:
      return true;
    default:
      return false;
  }
}

// Milliseconds the provider asked us to wait before trying `target` again.
static uint32_t wait_ms(uint32_t target) {
  target_health_t h;
  if (!switchyard_policy_host_health(target, &h) || !h.retry_after_ms.is_some) return 0;
  return h.retry_after_ms.val;
}

// No Retry-After running and the breaker not open (asked of the host,
// which keeps both).
static bool available(uint32_t target) { return switchyard_policy_host_available(target); }

static bool contains(const policy_list_u32_t *list, uint32_t value) {
  for (size_t i = 0; i < list->len; i++) {
    if (list->ptr[i] == value) return true;
  }
  return false;
}

// Reads `"max_attempts": N` from the settings JSON; 0 when present but not a
// whole number above 0. Enough for one integer setting; use a JSON library
// (cJSON, jsmn) for more.
static uint32_t parse_max_attempts(const char *json, size_t len) {
  static const char key[] = "\"max_attempts\"";
  const char *end = json + len;
  for (const char *p = json; p + sizeof key - 1 <= end; p++) {
    if (memcmp(p, key, sizeof key - 1) != 0) continue;
    p += sizeof key - 1;
    while (p < end && (*p == ' ' || *p == ':' || *p == '\n' || *p == '\t')) p++;
    uint64_t n = 0;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9' && n < 1000000) n = n * 10 + (uint64_t)(*p++ - '0');
    bool whole = p > digits && (p == end || *p == ',' || *p == '}' || *p == ' ' || *p == '\n');
    return whole && n > 0 ? (uint32_t)n : 0;
  }
  return 4;
}

bool exports_policy_init(policy_string_t *settings, policy_topology_t *topo, policy_string_t *err) {
  uint32_t parsed = parse_max_attempts((const char *)settings->ptr, settings->len);
  if (parsed == 0) {
    char message[512];
    snprintf(message, sizeof message, "max_attempts must be a whole number above 0 in %.*s",
             (int)(settings->len > 400 ? 400 : settings->len), (const char *)settings->ptr);
    policy_string_dup(err, message);
    policy_string_free(settings);
    policy_topology_free(topo);
    return false;
  }
  max_attempts = parsed;
  policy_string_free(settings);
  policy_topology_free(&topology);  // a previous init's, if any
  topology = *topo;                  // kept: the routes' target lists are read on every call
  return true;
}

void exports_policy_route(policy_request_info_t *request, policy_route_decision_t *ret) {
  const policy_list_u32_t *targets = &topology.routes.ptr[request->route].targets;
  uint32_t *ordered = malloc(targets->len * sizeof *ordered);
  size_t n = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < targets->len; i++) {
      if (available(targets->ptr[i]) == (pass == 0)) ordered[n++] = targets->ptr[i];
    }
  }
  ret->tag = SWITCHYARD_POLICY_TYPES_ROUTE_DECISION_SEND;
  ret->val.send.targets = (policy_list_u32_t){.ptr = ordered, .len = n};
  // Attempt limits left to the route's config (`first_token_timeout_ms`, ...).
  ret->val.send.limits = (switchyard_policy_types_attempt_limits_t){0};
  ret->val.send.hedge_after_ms.is_some = false;
}

static void retry(policy_next_step_t *ret, uint32_t target, uint32_t delay_ms) {
  ret->tag = SWITCHYARD_POLICY_TYPES_NEXT_STEP_RETRY;
  ret->val.retry = (switchyard_policy_types_retry_t){.target = target, .delay_ms = delay_ms};
}

static void decide(policy_request_info_t *request, policy_attempt_outcome_t *outcome, policy_next_step_t *ret) {
  if (!is_retryable(outcome->kind)) {
    ret->tag = SWITCHYARD_POLICY_TYPES_NEXT_STEP_ACCEPT;
    return;
  }
  uint32_t asked = outcome->retry_after_ms.is_some ? outcome->retry_after_ms.val : 1000;
  // Unless a retry is chosen below, give up with a 503.
  ret->tag = SWITCHYARD_POLICY_TYPES_NEXT_STEP_DEGRADE;
  ret->val.degrade.tag = SWITCHYARD_POLICY_TYPES_DEGRADE_UNAVAILABLE;
  ret->val.degrade.val.unavailable = asked < 1000 ? 1000 : asked;
  if (outcome->attempt >= max_attempts) return;

  const policy_list_u32_t *targets = &topology.routes.ptr[request->route].targets;
  for (size_t i = 0; i < targets->len; i++) {
    uint32_t t = targets->ptr[i];
    if (!contains(&outcome->tried, t) && available(t)) {
      retry(ret, t, 0);
      return;
    }
  }
  // Every target tried: the one free soonest, after full-jitter backoff.
  uint32_t shift = outcome->attempt < 5 ? outcome->attempt : 5;
  uint32_t ceiling = 100u << shift;
  if (ceiling > 2000) ceiling = 2000;
  uint32_t backoff = (uint32_t)(switchyard_policy_host_random() * ceiling);
  uint32_t best_wait = UINT32_MAX, best_target = 0;
  for (size_t i = 0; i < targets->len; i++) {
    uint32_t wait = wait_ms(targets->ptr[i]);
    if (wait < backoff) wait = backoff;
    if (wait < best_wait) best_wait = wait, best_target = targets->ptr[i];
  }
  if (best_wait < request->deadline_ms / 2) retry(ret, best_target, best_wait);
}

void exports_policy_on_attempt(policy_request_info_t *request, policy_attempt_outcome_t *outcome,
                               policy_next_step_t *ret) {
  decide(request, outcome, ret);
  policy_attempt_outcome_free(outcome);
}

void exports_policy_on_stream_break(policy_request_info_t *request, policy_stream_break_t *broken,
                                    policy_recovery_t *ret) {
  ret->tag = SWITCHYARD_POLICY_TYPES_RECOVERY_END;
  // At most two recoveries per request, then a clean error event.
  if (broken->recoveries < 2) {
    const policy_list_u32_t *targets = &topology.routes.ptr[request->route].targets;
    uint32_t target = broken->target;
    for (size_t i = 0; i < targets->len; i++) {
      if (targets->ptr[i] != broken->target && available(targets->ptr[i])) {
        target = targets->ptr[i];
        break;
      }
    }
    switchyard_policy_types_retry_t retry = {.target = target, .delay_ms = 0};
    // A partial tool call cannot be continued, and a target that refused a
    // partial assistant turn (a 400) is asked the question again instead.
    bool refused = broken->failed_recovery.is_some &&
                   broken->failed_recovery.val.kind == SWITCHYARD_POLICY_TYPES_OUTCOME_KIND_INVALID_REQUEST;
    if (broken->in_tool_call || refused) {
      ret->tag = SWITCHYARD_POLICY_TYPES_RECOVERY_RESTART;
      ret->val.restart = retry;
    } else {
      ret->tag = SWITCHYARD_POLICY_TYPES_RECOVERY_CONTINUE;
      ret->val.continue_ = retry;
    }
  }
  policy_stream_break_free(broken);
}
