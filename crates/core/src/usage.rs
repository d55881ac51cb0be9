//! `GET /admin/keys` and `GET /admin/quotas`: who used how much, and how
//! full each provider's quota is.

use serde_json::{Value, json};

use crate::gateway::Shared;

/// Every gateway key: its limits, what it may still send now, and what it
/// used today, this month and since the gateway started (never the key).
pub(crate) fn keys(shared: &Shared) -> Value {
    let now = std::time::Instant::now();
    let wall = time::OffsetDateTime::now_utc();
    let mut keys: Vec<Value> = shared
        .keys
        .tenants()
        .map(|t| {
            let (rpm, tpm, max_concurrency) = t.limits();
            let (requests_left, tokens_left) = t.remaining(now);
            let (today, month, total) = t.ledger().used(wall);
            let b = t.budgets();
            json!({
                "name": &*t.name,
                "priority": t.priority.as_str(),
                "limits": {
                    "requests_per_minute": rpm,
                    "tokens_per_minute": tpm,
                    "max_concurrency": max_concurrency,
                    "daily_tokens": b.daily_tokens,
                    "monthly_tokens": b.monthly_tokens,
                    "daily_spend_usd": b.daily_usd,
                    "monthly_spend_usd": b.monthly_usd,
                },
                "inflight": t.inflight(),
                "remaining": { "requests": requests_left, "tokens": tokens_left },
                "used": { "today": today, "this_month": month, "since_start": total },
            })
        })
        .collect();
    keys.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({ "keys": keys })
}

/// Each provider (and model) quota: its limits, requests in flight and
/// waiting; each route's queue.
pub(crate) fn quotas(shared: &Shared) -> Value {
    let gates: Vec<Value> = shared
        .quotas
        .gates()
        .into_iter()
        .map(|(name, quota, inflight, waiting)| {
            json!({
                "name": name,
                "rpm": quota.rpm,
                "tpm": quota.tpm,
                "max_concurrency": quota.max_concurrency,
                "inflight": inflight,
                "waiting": waiting,
            })
        })
        .collect();
    let queues: Vec<Value> = shared
        .routes
        .iter()
        .zip(&shared.quotas.waiting)
        .map(|(route, waiting)| json!({ "route": route.name.as_str(), "waiting": waiting.len() }))
        .collect();
    json!({ "gates": gates, "queues": queues, "max_wait_ms": shared.quotas.max_wait.as_millis() as u64 })
}
