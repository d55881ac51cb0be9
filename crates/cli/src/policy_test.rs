//! `switchyard policy test`: expectation files for policy authors — given
//! these outcomes and this health, the policy must decide this. Each case
//! runs on a twin of the loaded version with its own health book (so
//! scripted outages never leak from one case into the next), under the
//! gateway's real host and limits. Run with no arguments in a scaffolded
//! policy's folder, it tests that folder's `NAME.wasm` against
//! `policy-tests.toml` and builds nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use switchyard_policy_host::{
    Api, AttemptOutcome, BreakKind, BreakerState, CallContext, Caller, Degrade, HealthBook, HostOptions, Limits,
    NextStep, OutcomeKind, PolicyHost, PolicyOrigin, PolicyVersion, Recovery, RequestInfo, RouteDecision, RouteInfo,
    StreamBreak, Target, Topology,
};

use crate::EXIT_CONFIG;

/// The expectation file a scaffold ships.
pub(crate) const EXPECTATIONS: &str = "policy-tests.toml";

/// A case's decision gets this long (a first call of a Python or JS policy
/// warms its interpreter); a loop is still stopped.
const CASE_DEADLINE: Duration = Duration::from_millis(500);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectations {
    /// The route's targets, in order (default: primary, backup, local).
    #[serde(default = "default_targets")]
    targets: Vec<String>,
    /// The policy's settings, as `[policies.NAME]` would give them.
    #[serde(default)]
    settings: toml::Table,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

fn default_targets() -> Vec<String> {
    ["primary", "backup", "local"].map(String::from).to_vec()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// Per target: `"open"` (breaker open), `"half-open"`, or a wait in ms
    /// it asked for (`Retry-After`).
    #[serde(default)]
    health: BTreeMap<String, Health>,
    /// The client asked for a stream.
    #[serde(default)]
    streaming: bool,
    /// The client speaks Anthropic's Messages API.
    #[serde(default)]
    anthropic: bool,
    /// Time left before the request's deadline, ms.
    #[serde(default = "default_deadline")]
    deadline_ms: u32,
    /// Ask `route`.
    #[serde(default)]
    route: Option<toml::Table>,
    /// Ask `on-attempt` after this outcome.
    #[serde(default)]
    on_attempt: Option<Attempt>,
    /// Ask `on-stream-break` after this break.
    #[serde(default)]
    on_stream_break: Option<Break>,
    expect: Expect,
}

fn default_deadline() -> u32 {
    30_000
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Health {
    Breaker(String),
    WaitMs(u32),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attempt {
    /// Every target tried so far, the one that just ended last.
    tried: Vec<String>,
    /// The provider's status (its kind follows from it unless `kind` says).
    #[serde(default)]
    status: Option<u16>,
    /// `connect-error`, `timeout`, `reset`, `rate-limited`, `overloaded`,
    /// `server-error`, `auth`, `context-too-long`, `content-filtered`,
    /// `invalid-request`, `invalid-response`, `success`.
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    retry_after_ms: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Break {
    /// The target whose stream broke.
    target: String,
    /// `cut` (default), `stall`, `provider-error`, `malformed`.
    #[serde(default = "cut")]
    kind: String,
    #[serde(default = "forty")]
    delivered_tokens: u32,
    #[serde(default)]
    in_tool_call: bool,
    #[serde(default)]
    recoveries: u32,
    /// Every target tried so far (default: the broken one).
    #[serde(default)]
    tried: Option<Vec<String>>,
}

fn cut() -> String {
    "cut".into()
}
fn forty() -> u32 {
    40
}

/// What the decision must be. `decision` names it; the rest narrow it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// `route`: `send` or `degrade`; `on-attempt`: `accept`, `retry` or
    /// `degrade`; `on-stream-break`: `continue`, `restart`, `end`, or
    /// `recover` (continue or restart).
    decision: String,
    /// The target sent to first, retried or recovered on.
    #[serde(default)]
    target: Option<String>,
    /// ...which must not be this one.
    #[serde(default)]
    not_target: Option<String>,
    /// `send`: the whole plan, in order.
    #[serde(default)]
    targets: Option<Vec<String>>,
    /// `send`: the plan's last target.
    #[serde(default)]
    last: Option<String>,
    /// `degrade`: `cached`, `unavailable` or `fallback`.
    #[serde(default)]
    degrade: Option<String>,
    /// A retry or recovery waits at least / at most this long.
    #[serde(default)]
    min_delay_ms: Option<u32>,
    #[serde(default)]
    max_delay_ms: Option<u32>,
}

/// What a case asked, and what the policy answered.
enum Answer {
    Route(RouteDecision),
    Attempt(NextStep),
    Break(Recovery),
}

fn kind(name: &str) -> Result<OutcomeKind, String> {
    Ok(match name {
        "success" => OutcomeKind::Success,
        "connect-error" => OutcomeKind::ConnectError,
        "timeout" => OutcomeKind::Timeout,
        "reset" => OutcomeKind::Reset,
        "rate-limited" => OutcomeKind::RateLimited,
        "overloaded" => OutcomeKind::Overloaded,
        "server-error" => OutcomeKind::ServerError,
        "auth" => OutcomeKind::Auth,
        "context-too-long" => OutcomeKind::ContextTooLong,
        "content-filtered" => OutcomeKind::ContentFiltered,
        "invalid-request" => OutcomeKind::InvalidRequest,
        "invalid-response" => OutcomeKind::InvalidResponse,
        other => return Err(format!("unknown outcome kind {other:?}")),
    })
}

fn break_kind(name: &str) -> Result<BreakKind, String> {
    Ok(match name {
        "cut" => BreakKind::Cut,
        "stall" => BreakKind::Stall,
        "provider-error" => BreakKind::ProviderError,
        "malformed" => BreakKind::Malformed,
        other => return Err(format!("unknown break kind {other:?}")),
    })
}

/// Target names ↔ indices of the one route.
struct Names<'a>(&'a [String]);

impl Names<'_> {
    fn index(&self, name: &str) -> Result<u32, String> {
        self.0
            .iter()
            .position(|t| t == name)
            .map(|i| i as u32)
            .ok_or_else(|| format!("no target {name:?} (targets: {})", self.0.join(", ")))
    }

    fn name(&self, index: u32) -> String {
        self.0.get(index as usize).cloned().unwrap_or_else(|| format!("target #{index} (not in the route)"))
    }

    fn list(&self, indices: &[u32]) -> Vec<String> {
        indices.iter().map(|&i| self.name(i)).collect()
    }
}

/// Runs one case on a twin of `version`: `Ok(what it decided)` when the
/// expectation holds, `Err(why not)` otherwise.
async fn run_case(version: &PolicyVersion, names: &Names<'_>, case: &Case) -> Result<String, String> {
    let twin = version.isolated();
    let health = twin.health();
    for (target, h) in &case.health {
        let t = names.index(target)?;
        match h {
            Health::Breaker(state) => {
                let state = match state.as_str() {
                    "open" => BreakerState::Open,
                    "half-open" => BreakerState::HalfOpen,
                    "closed" => BreakerState::Closed,
                    other => return Err(format!("health of {target:?}: {other:?} is not open, half-open or closed")),
                };
                health.force(t, Some(state));
            }
            Health::WaitMs(ms) => {
                health.record(t, false, Duration::from_millis(40), Some(Duration::from_millis(u64::from(*ms))))
            }
        }
    }
    let request = RequestInfo {
        api: if case.anthropic { Api::AnthropicMessages } else { Api::OpenaiChat },
        route: 0,
        streaming: case.streaming,
        estimated_input_tokens: 250,
        deadline_ms: case.deadline_ms,
        caller: Caller::default(),
    };
    let call = Arc::new(CallContext::default());
    let failed = |e: switchyard_policy_host::PolicyError| format!("the policy failed: {e}");
    let asked = [case.route.is_some(), case.on_attempt.is_some(), case.on_stream_break.is_some()];
    if asked.iter().filter(|a| **a).count() != 1 {
        return Err("a case asks exactly one of route, on_attempt, on_stream_break".into());
    }
    let answer = if case.route.is_some() {
        Answer::Route(twin.route_within(&request, call, Some(CASE_DEADLINE)).await.map_err(failed)?)
    } else if let Some(a) = &case.on_attempt {
        let tried = a.tried.iter().map(|t| names.index(t)).collect::<Result<Vec<_>, _>>()?;
        let Some(&last) = tried.last() else { return Err("on_attempt.tried is empty".into()) };
        let kind = match (&a.kind, a.status) {
            (Some(k), _) => kind(k)?,
            (None, Some(status)) => switchyard_wire::classify_status(status, b""),
            (None, None) => return Err("on_attempt needs a status or a kind".into()),
        };
        let outcome = AttemptOutcome {
            target: last,
            attempt: tried.len() as u32,
            tried,
            kind,
            http_status: a.status,
            retry_after_ms: a.retry_after_ms,
            elapsed_ms: 40,
        };
        Answer::Attempt(twin.on_attempt_within(&request, &outcome, call, Some(CASE_DEADLINE)).await.map_err(failed)?)
    } else {
        let b = case.on_stream_break.as_ref().expect("checked above");
        let target = names.index(&b.target)?;
        let tried = match &b.tried {
            Some(t) => t.iter().map(|t| names.index(t)).collect::<Result<Vec<_>, _>>()?,
            None => vec![target],
        };
        let broken = StreamBreak {
            target,
            kind: break_kind(&b.kind)?,
            delivered_chars: b.delivered_tokens * 4,
            delivered_tokens: b.delivered_tokens,
            in_tool_call: b.in_tool_call,
            elapsed_ms: 2_500,
            recoveries: b.recoveries,
            tried,
            failed_recovery: None,
        };
        let request = RequestInfo { streaming: true, ..request };
        Answer::Break(twin.on_stream_break_within(&request, &broken, call, Some(CASE_DEADLINE)).await.map_err(failed)?)
    };
    judge(&answer, &case.expect, names)
}

fn degrade_name(d: &Degrade) -> &'static str {
    match d {
        Degrade::Cached(_) => "cached",
        Degrade::Unavailable(_) => "unavailable",
        Degrade::Fallback(_) => "fallback",
    }
}

/// A decision taken apart for judging.
struct Decided<'a> {
    decision: &'static str,
    /// The target sent to first, retried or recovered on.
    chosen: Option<u32>,
    plan: Option<&'a [u32]>,
    delay: Option<u32>,
    degrade: Option<&'a Degrade>,
}

impl<'a> Decided<'a> {
    fn of(answer: &'a Answer) -> Decided<'a> {
        let d = |decision| Decided { decision, chosen: None, plan: None, delay: None, degrade: None };
        let retry = |decision, r: &switchyard_policy_host::Retry| Decided {
            chosen: Some(r.target),
            delay: Some(r.delay_ms),
            ..d(decision)
        };
        match answer {
            Answer::Route(RouteDecision::Send(p)) => {
                Decided { chosen: p.targets.first().copied(), plan: Some(&p.targets), ..d("send") }
            }
            Answer::Route(RouteDecision::Degrade(g)) | Answer::Attempt(NextStep::Degrade(g)) => {
                Decided { degrade: Some(g), ..d("degrade") }
            }
            Answer::Attempt(NextStep::Accept) => d("accept"),
            Answer::Attempt(NextStep::Retry(r)) => retry("retry", r),
            Answer::Break(Recovery::Continue(r)) => retry("continue", r),
            Answer::Break(Recovery::Restart(r)) => retry("restart", r),
            Answer::Break(Recovery::End) => d("end"),
        }
    }

    fn words(&self, names: &Names<'_>) -> String {
        match (self.plan, self.chosen, self.delay, self.degrade) {
            (Some(plan), ..) => format!("send to {}", names.list(plan).join(", ")),
            (_, _, _, Some(g)) => format!("degrade: {}", degrade_name(g)),
            (_, Some(t), Some(ms), _) => format!("{} on {} after {ms} ms", self.decision, names.name(t)),
            _ => self.decision.to_owned(),
        }
    }
}

/// Whether `answer` meets `expect`; either way, the answer in words.
fn judge(answer: &Answer, expect: &Expect, names: &Names<'_>) -> Result<String, String> {
    let got = Decided::of(answer);
    let said = got.words(names);
    let wrong = |why: String| Err(format!("{why}; the policy said: {said}"));
    let decided_ok = match expect.decision.as_str() {
        "recover" => matches!(got.decision, "continue" | "restart"),
        wanted => wanted == got.decision,
    };
    if !decided_ok {
        return wrong(format!("expected {}", expect.decision));
    }
    if let Some(t) = &expect.target
        && got.chosen != Some(names.index(t)?)
    {
        return wrong(format!("expected target {t}"));
    }
    if let Some(t) = &expect.not_target
        && got.chosen == Some(names.index(t)?)
    {
        return wrong(format!("expected a target other than {t}"));
    }
    if let Some(all) = &expect.targets
        && got.plan.map(|p| names.list(p)) != Some(all.clone())
    {
        return wrong(format!("expected the plan {}", all.join(", ")));
    }
    if let Some(last) = &expect.last
        && got.plan.and_then(|p| p.last()).copied() != Some(names.index(last)?)
    {
        return wrong(format!("expected {last} last"));
    }
    if let Some(g) = &expect.degrade
        && got.degrade.map(degrade_name) != Some(g.as_str())
    {
        return wrong(format!("expected to degrade: {g}"));
    }
    if let Some(min) = expect.min_delay_ms
        && got.delay.is_none_or(|d| d < min)
    {
        return wrong(format!("expected a wait of at least {min} ms"));
    }
    if let Some(max) = expect.max_delay_ms
        && got.delay.is_none_or(|d| d > max)
    {
        return wrong(format!("expected a wait of at most {max} ms"));
    }
    Ok(said)
}

/// The component and expectation files of a scaffolded policy's folder.
fn in_folder(dir: &Path) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
    let expectations = dir.join(EXPECTATIONS);
    anyhow::ensure!(
        expectations.is_file(),
        "no {EXPECTATIONS} in {}: run `switchyard policy test` in a policy's folder made by `switchyard new`, or name the files: switchyard policy test FILE.wasm --expect FILE.toml",
        dir.display()
    );
    let stem = dir.canonicalize()?.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let component = dir.join(format!("{stem}.wasm"));
    anyhow::ensure!(
        component.is_file(),
        "no {stem}.wasm in {}: build it first (./build.sh); `policy test` builds nothing",
        dir.display()
    );
    Ok((component, vec![expectations]))
}

/// `switchyard policy test [FILE.wasm] [--expect FILE.toml ...]`.
pub(crate) async fn test(file: Option<&Path>, expect: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (component, files) = match file {
        Some(f) if !expect.is_empty() => (f.to_owned(), expect.to_vec()),
        Some(f) => {
            let dir = f.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            (f.to_owned(), vec![dir.join(EXPECTATIONS)])
        }
        None => match in_folder(Path::new(".")) {
            Ok(found) => found,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
        },
    };
    let Some(name) = switchyard_policy_host::host::policy_name(&component) else {
        eprintln!("error: {} is not a NAME.wasm file", component.display());
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let bytes = std::fs::read(&component).with_context(|| format!("reading {}", component.display()))?;
    let (mut passed, mut failed) = (0, 0);
    for path in &files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
        };
        let expectations: Expectations = match toml::from_str(&text) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {}: {}", path.display(), e.to_string().trim());
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
        };
        let version = match load(&name, &bytes, &component, &expectations).await {
            Ok(v) => v,
            Err(e) => {
                say!("{}: REJECTED — {e}", component.display());
                return Ok(ExitCode::FAILURE);
            }
        };
        say!("{} against {}", version.label(), path.display());
        let names = Names(&expectations.targets);
        for case in &expectations.cases {
            match run_case(&version, &names, case).await {
                Ok(said) => {
                    passed += 1;
                    say!("  ok   {} — {said}", case.name);
                }
                Err(why) => {
                    failed += 1;
                    say!("  FAIL {} — {why}", case.name);
                }
            }
        }
    }
    if failed == 0 {
        say!("ok: {passed} case(s)");
        Ok(ExitCode::SUCCESS)
    } else {
        say!("FAILED: {failed} of {} case(s)", passed + failed);
        Ok(ExitCode::FAILURE)
    }
}

/// Loads the component under the gateway's limits, with one route over the file's targets.
async fn load(
    name: &str,
    bytes: &[u8],
    file: &Path,
    expectations: &Expectations,
) -> anyhow::Result<Arc<PolicyVersion>> {
    let targets: Vec<Target> =
        expectations.targets.iter().map(|t| Target { provider: t.clone(), model: "model".into() }).collect();
    let topology = Topology {
        routes: vec![RouteInfo { model: "chat".into(), targets: (0..targets.len() as u32).collect() }],
        targets,
    };
    let settings = serde_json::to_string(&expectations.settings)?;
    let options = HostOptions {
        settings: [(name.to_owned(), settings)].into(),
        cache_dir: file.parent().map(|d| d.join(".cache")),
        ..HostOptions::new(topology, Limits::new(Duration::from_millis(5), 64 << 20))
    };
    let host = PolicyHost::new(options, Arc::new(HealthBook::new(expectations.targets.len())))?;
    let (version, _) = host.prepare(name, bytes.to_vec(), PolicyOrigin::File(file.to_owned())).await?;
    Ok(version)
}
