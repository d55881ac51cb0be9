//! What a run comes to: success, degradation and failures, latency
//! percentiles, attempts and cost per provider, how soon each provider got
//! traffic back after its faults ended, and a timeline. Only simulated
//! quantities: the same scenario and seed give the same report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use switchyard_mock::FaultKind;

use crate::run::Played;
use crate::scenario::Scenario;

/// The summary of one run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The seed it ran with.
    pub seed: u64,
    /// The policy version that decided (`x-switchyard-policy`, most common).
    pub policy: String,
    /// Simulated seconds.
    pub simulated_seconds: f64,
    /// Client requests sent.
    pub requests: u64,
    /// Of those, asking for a stream.
    pub streams: u64,
    /// Answered whole by a provider.
    pub answered: u64,
    /// Answered whole, degraded, by kind (`cached`, `fallback`).
    pub degraded: BTreeMap<String, u64>,
    /// Not answered whole: error statuses and broken streams.
    pub failed: u64,
    /// Failures by status (`"503"`), broken streams as `"broken stream"`.
    pub failed_by: BTreeMap<String, u64>,
    /// (answered + degraded) / requests.
    pub success_rate: f64,
    /// Streams the gateway carried on after a break (an SSE comment says so).
    pub recovered_streams: u64,
    /// Time to the whole answer of every successful request, in ms.
    pub latency_ms: Percentiles,
    /// Per provider of the scenario.
    pub providers: Vec<ProviderReport>,
    /// Every fault window of the scenario, for the timeline.
    pub faults: Vec<FaultBand>,
    /// Per step of time.
    pub timeline: Timeline,
}

/// Percentiles of a set of durations, in ms.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// One provider's part in the run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProviderReport {
    /// Its name.
    pub name: String,
    /// Requests the gateway sent it.
    pub attempts: u64,
    /// Of those, answered healthy.
    pub healthy: u64,
    /// Of those, hit by a fault, by kind.
    pub faulted: BTreeMap<String, u64>,
    /// Prompt tokens it was sent (about a quarter of the bytes).
    pub prompt_tokens: u64,
    /// Answer tokens it sent.
    pub answer_tokens: u64,
    /// At the plan's prices, US dollars.
    pub cost_usd: f64,
    /// After each of its outages (overlapping faults are one) that ended
    /// before the run did: how soon it answered healthy again.
    pub recoveries: Vec<Recovery>,
}

/// How soon traffic came back after a fault ended.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Recovery {
    /// The kinds of fault the outage had (`status`, `status+hang`).
    pub fault: String,
    /// When it ended, simulated seconds from the start.
    pub ended_s: f64,
    /// Seconds from its end to the provider's next healthy answer (`None`: none before the run ended).
    pub back_after_s: Option<f64>,
}

/// A fault window, for drawing.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FaultBand {
    /// The provider.
    pub provider: String,
    /// The fault's kind.
    pub kind: String,
    /// Start, simulated seconds.
    pub from_s: f64,
    /// End.
    pub to_s: f64,
    /// Share of requests hit.
    pub share: f64,
}

/// The run in steps of time.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Timeline {
    /// Width of a step, seconds.
    pub step_s: f64,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One step: requests by their arrival, attempts by when they were sent.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Step {
    /// Start, seconds.
    pub t_s: f64,
    /// Requests arriving.
    pub requests: u64,
    /// Of those, answered by a provider.
    pub answered: u64,
    /// Degraded answers.
    pub degraded: u64,
    /// Failed.
    pub failed: u64,
    /// Median latency of the successful ones, ms.
    pub p50_ms: u64,
    /// Attempts per provider (the report's provider order).
    pub attempts: Vec<u64>,
    /// Of those, hit by a fault.
    pub faulted: Vec<u64>,
}

fn percentiles(mut ms: Vec<u64>) -> Percentiles {
    if ms.is_empty() {
        return Percentiles::default();
    }
    ms.sort_unstable();
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    Percentiles { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: ms[ms.len() - 1] }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A provider's faults as outages: overlapping or touching windows are one
/// (a brown-out that turns into a black-out ends once); each with the
/// kinds it had (`status+hang`) and its end.
fn outages(faults: &[switchyard_mock::Fault]) -> Vec<(String, Duration)> {
    let mut windows: Vec<(Duration, Duration, FaultKind)> = faults.iter().map(|f| (f.from, f.to, f.kind)).collect();
    windows.sort_by_key(|w| w.0);
    let mut out: Vec<(Vec<FaultKind>, Duration, Duration)> = Vec::new();
    for (from, to, kind) in windows {
        match out.last_mut() {
            Some((kinds, _, end)) if from <= *end => {
                *end = (*end).max(to);
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            _ => out.push((vec![kind], from, to)),
        }
    }
    out.into_iter().map(|(kinds, _, end)| (kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join("+"), end)).collect()
}

/// Sums up a run.
pub(crate) fn summarize(scenario: &Scenario, seed: u64, played: &Played) -> Report {
    let outcomes = &played.outcomes;
    let mut degraded = BTreeMap::new();
    let mut failed_by = BTreeMap::new();
    let mut policies: BTreeMap<&str, u64> = BTreeMap::new();
    for o in outcomes {
        if let Some(p) = &o.policy {
            *policies.entry(p).or_default() += 1;
        }
        if o.degraded_ok() {
            *degraded.entry(o.degraded.clone().unwrap_or_default()).or_default() += 1;
        } else if !o.ok() {
            let why = if o.status == 200 {
                "broken stream".to_owned()
            } else if o.status == 0 {
                "no answer".to_owned()
            } else {
                o.status.to_string()
            };
            *failed_by.entry(why).or_default() += 1;
        }
    }
    let requests = outcomes.len() as u64;
    let answered = outcomes.iter().filter(|o| o.ok()).count() as u64;
    let failed = failed_by.values().sum::<u64>();
    let successes = || outcomes.iter().filter(|o| o.ok() || o.degraded_ok());
    let policy = policies.iter().max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name))).map_or("none", |(p, _)| p);

    let step = scenario.step();
    let steps_n = (scenario.duration.as_secs_f64() / step.as_secs_f64()).ceil() as usize;
    let n_providers = scenario.providers.len();
    let mut steps: Vec<Step> = (0..steps_n)
        .map(|i| Step {
            t_s: (step * i as u32).as_secs_f64(),
            attempts: vec![0; n_providers],
            faulted: vec![0; n_providers],
            ..Step::default()
        })
        .collect();
    let index = |at: Duration| ((at.as_secs_f64() / step.as_secs_f64()) as usize).min(steps_n - 1);
    let mut step_latency: Vec<Vec<u64>> = vec![Vec::new(); steps_n];
    for o in outcomes {
        let s = &mut steps[index(o.at)];
        s.requests += 1;
        if o.ok() {
            s.answered += 1;
        } else if o.degraded_ok() {
            s.degraded += 1;
        } else {
            s.failed += 1;
        }
        if o.ok() || o.degraded_ok() {
            step_latency[index(o.at)].push(ms(o.latency));
        }
    }
    for (s, latencies) in steps.iter_mut().zip(step_latency) {
        s.p50_ms = percentiles(latencies).p50;
    }

    let mut providers = Vec::new();
    let mut faults = Vec::new();
    for (i, (plan, received)) in scenario.providers.iter().zip(&played.received).enumerate() {
        let mut faulted = BTreeMap::new();
        let (mut prompt_tokens, mut answer_tokens, mut healthy) = (0u64, 0u64, 0u64);
        for r in received {
            let s = &mut steps[index(r.at)];
            s.attempts[i] += 1;
            match r.fault {
                Some(kind) => {
                    s.faulted[i] += 1;
                    *faulted.entry(kind.name().to_owned()).or_default() += 1;
                }
                None => healthy += 1,
            }
            // A provider bills what it read and what it said.
            if r.answer_tokens > 0 {
                prompt_tokens += u64::from(r.prompt_tokens);
                answer_tokens += u64::from(r.answer_tokens);
            }
        }
        let recoveries = outages(&plan.faults)
            .into_iter()
            .filter(|(_, end)| *end < scenario.duration)
            .map(|(kinds, end)| {
                let back = received
                    .iter()
                    .find(|r| r.at >= end && (r.fault.is_none() || r.fault == Some(FaultKind::Slow)))
                    .map(|r| ms(r.at - end) as f64 / 1000.0);
                Recovery { fault: kinds, ended_s: end.as_secs_f64(), back_after_s: back }
            })
            .collect();
        faults.extend(plan.faults.iter().map(|f| FaultBand {
            provider: plan.name.clone(),
            kind: f.kind.name().to_owned(),
            from_s: f.from.as_secs_f64(),
            to_s: f.to.min(scenario.duration).as_secs_f64(),
            share: f.share,
        }));
        let cost = (prompt_tokens as f64 * plan.input_price + answer_tokens as f64 * plan.output_price) / 1e6;
        providers.push(ProviderReport {
            name: plan.name.clone(),
            attempts: received.len() as u64,
            healthy,
            faulted,
            prompt_tokens,
            answer_tokens,
            cost_usd: (cost * 1e4).round() / 1e4,
            recoveries,
        });
    }

    Report {
        scenario: scenario.name.clone().unwrap_or_else(|| "scenario".into()),
        seed,
        policy: policy.to_owned(),
        simulated_seconds: scenario.duration.as_secs_f64(),
        requests,
        streams: outcomes.iter().filter(|o| o.stream).count() as u64,
        answered,
        success_rate: if requests == 0 {
            0.0
        } else {
            (answered + degraded.values().sum::<u64>()) as f64 / requests as f64
        },
        degraded,
        failed,
        failed_by,
        recovered_streams: outcomes.iter().filter(|o| o.recovered).count() as u64,
        latency_ms: percentiles(successes().map(|o| ms(o.latency)).collect()),
        providers,
        faults,
        timeline: Timeline { step_s: step.as_secs_f64(), steps },
    }
}

/// Simulated seconds as people write them: `1h05m`, `47s`, `1.5s`.
pub fn clock(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    match whole {
        0..60 if seconds.fract() > 0.0 && seconds < 10.0 => format!("{seconds:.1}s"),
        0..60 => format!("{whole}s"),
        60..3600 if whole.is_multiple_of(60) => format!("{}m", whole / 60),
        60..3600 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    /// Degraded answers of every kind.
    pub fn degraded_total(&self) -> u64 {
        self.degraded.values().sum()
    }

    /// The report as people read it (what `switchyard simulate` prints).
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Scenario {} (seed {}): {} simulated, decided by {}",
            self.scenario,
            self.seed,
            clock(self.simulated_seconds),
            self.policy
        );
        let degraded: Vec<String> = self.degraded.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect();
        let _ = writeln!(
            out,
            "  requests {} ({} streamed): success {:.2} % (answered {}, degraded {}{}), failed {}{}",
            thousands(self.requests),
            thousands(self.streams),
            self.success_rate * 100.0,
            thousands(self.answered),
            thousands(self.degraded_total()),
            if degraded.is_empty() { String::new() } else { format!(": {}", degraded.join(", ")) },
            thousands(self.failed),
            if self.failed_by.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    self.failed_by.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect::<Vec<_>>().join(", ")
                )
            },
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "  latency of successful requests: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms; streams recovered after a break: {}",
            l.p50, l.p90, l.p99, l.max, self.recovered_streams
        );
        let _ = writeln!(
            out,
            "  {:<14} {:>9} {:>9} {:>9} {:>13} {:>10}  faults",
            "provider", "attempts", "healthy", "faulted", "tokens", "cost $"
        );
        for p in &self.providers {
            let faulted: u64 = p.faulted.values().sum();
            let kinds: Vec<String> = p.faulted.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect();
            let _ = writeln!(
                out,
                "  {:<14} {:>9} {:>9} {:>9} {:>13} {:>10.2}  {}",
                p.name,
                thousands(p.attempts),
                thousands(p.healthy),
                thousands(faulted),
                thousands(p.prompt_tokens + p.answer_tokens),
                p.cost_usd,
                kinds.join(", ")
            );
            for r in &p.recoveries {
                let back = match r.back_after_s {
                    Some(s) => format!("answering healthy again {} later", clock(s)),
                    None => "no healthy answer before the end".to_owned(),
                };
                let _ = writeln!(out, "    after its {} outage ended at {}: {back}", r.fault, clock(r.ended_s));
            }
        }
        let names: Vec<&str> = self.providers.iter().map(|p| p.name.as_str()).collect();
        let _ = writeln!(
            out,
            "  timeline (step {}): start, requests, answered, degraded, failed, p50 ms, attempts {}",
            clock(self.timeline.step_s),
            names.join("/")
        );
        for s in &self.timeline.steps {
            let attempts: Vec<String> = s.attempts.iter().map(u64::to_string).collect();
            let _ = writeln!(
                out,
                "    {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}  {}",
                clock(s.t_s),
                s.requests,
                s.answered,
                s.degraded,
                s.failed,
                s.p50_ms,
                attempts.join("/")
            );
        }
        out
    }
}

/// Two runs of one scenario side by side (`--compare`).
pub fn compare_text(a: &Report, b: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Scenario {} (seed {}): {} simulated", a.scenario, a.seed, clock(a.simulated_seconds));
    let _ = writeln!(out, "  {:<34} {:>22} {:>22}", "", a.policy, b.policy);
    let rows: Vec<(&str, String, String)> = vec![
        ("success rate", format!("{:.2} %", a.success_rate * 100.0), format!("{:.2} %", b.success_rate * 100.0)),
        ("answered by a provider", thousands(a.answered), thousands(b.answered)),
        ("degraded", thousands(a.degraded_total()), thousands(b.degraded_total())),
        ("failed", thousands(a.failed), thousands(b.failed)),
        (
            "latency p50 / p99, ms",
            format!("{} / {}", a.latency_ms.p50, a.latency_ms.p99),
            format!("{} / {}", b.latency_ms.p50, b.latency_ms.p99),
        ),
        ("streams recovered", thousands(a.recovered_streams), thousands(b.recovered_streams)),
        (
            "attempts (all providers)",
            thousands(a.providers.iter().map(|p| p.attempts).sum()),
            thousands(b.providers.iter().map(|p| p.attempts).sum()),
        ),
        (
            "cost, $",
            format!("{:.2}", a.providers.iter().map(|p| p.cost_usd).sum::<f64>()),
            format!("{:.2}", b.providers.iter().map(|p| p.cost_usd).sum::<f64>()),
        ),
    ];
    for (name, x, y) in rows {
        let _ = writeln!(out, "  {name:<34} {x:>22} {y:>22}");
    }
    for (pa, pb) in a.providers.iter().zip(&b.providers) {
        let _ = writeln!(
            out,
            "  {:<34} {:>22} {:>22}",
            format!("{}: attempts (faulted)", pa.name),
            format!("{} ({})", thousands(pa.attempts), thousands(pa.faulted.values().sum())),
            format!("{} ({})", thousands(pb.attempts), thousands(pb.faulted.values().sum())),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = percentiles((1..=100).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50, 90, 99, 100));
        assert_eq!(percentiles(vec![]), Percentiles::default());
    }

    #[test]
    fn clocks_read_as_people_write_them() {
        assert_eq!(clock(47.0), "47s");
        assert_eq!(clock(300.0), "5m");
        assert_eq!(clock(3900.0), "1h05m");
        assert_eq!(clock(1.5), "1.5s");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
