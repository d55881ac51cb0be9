//! What the status page shows (`GET /status`, polling `GET /status.json`)
//! and `GET /admin/policies`: targets with their last hour, routes, the
//! policies serving, the incident timeline.

use serde_json::{Value, json};
use switchyard_policy_host::PolicyOrigin;

use crate::gateway::Shared;

/// The page: one self-contained file, no outside assets.
pub(crate) const PAGE: &str = include_str!("status.html");

fn rfc3339(at: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(at).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// `GET /admin/policies`: per policy name, what serves it and how it fares.
pub(crate) fn policies(shared: &Shared) -> Value {
    let telemetry = &shared.telemetry;
    let views = shared.policies.slots();
    let version = |v: &Option<std::sync::Arc<switchyard_policy_host::PolicyVersion>>| {
        v.as_ref().map(|v| {
            json!({
                "version": v.label().to_string(),
                "sha256": v.sha256(),
                "origin": match v.origin() { PolicyOrigin::Embedded => "embedded", PolicyOrigin::File(_) => "file" },
                "file": match v.origin() {
                    PolicyOrigin::File(path) => path.file_name().map(|f| f.to_string_lossy().into_owned()),
                    PolicyOrigin::Embedded => None,
                },
                "loaded_at": rfc3339(v.loaded_at()),
                "demoted": v.standing().demoted(),
            })
        })
    };
    let shadows = shared.policies.shadow_reports();
    let list: Vec<Value> = views
        .iter()
        .map(|view| {
            let shadow: Vec<&switchyard_policy_host::shadow::ShadowReport> =
                shadows.iter().filter(|s| s.policy == view.name).collect();
            let times = telemetry.decision_times(&view.name);
            let routes: Vec<&str> =
                shared.routes.iter().filter(|r| r.policy == view.name).map(|r| r.name.as_str()).collect();
            json!({
                "policy": view.name,
                "routes": routes,
                "current": version(&view.current),
                "last_good": version(&view.last_good),
                "embedded": version(&view.embedded),
                "decision_p50_us": times.map(|t| t.p50_us),
                "decision_p99_us": times.map(|t| t.p99_us),
                "decisions_sampled": times.map_or(0, |t| t.samples),
                "fallbacks": telemetry.fallbacks_of(&view.name),
                "dropped_log_lines": shared.policies.dropped_log_lines(&view.name),
                "shadow": shadow,
            })
        })
        .collect();
    Value::Array(list)
}

/// `GET /status.json`: everything the status page draws.
pub(crate) fn snapshot(shared: &Shared) -> Value {
    let targets: Vec<Value> = (0..shared.topology.targets.len() as u32)
        .map(|i| {
            let mut target = crate::admin::target_json(shared, i);
            let hour = shared.metrics.history(i).map(|h| h.hour()).unwrap_or_default();
            target["hour"] = serde_json::to_value(hour).unwrap_or_default();
            target
        })
        .collect();
    let events = shared.telemetry.events.since(0, 50);
    let events: Vec<&switchyard_telemetry::events::Event> = events.iter().map(|e| &**e).collect();
    json!({
        "generated_at": switchyard_telemetry::now_rfc3339(),
        "targets": targets,
        "routes": crate::admin::routes(shared),
        "policies": policies(shared),
        "events": serde_json::to_value(events).unwrap_or_default(),
    })
}
