//! The report as one self-contained HTML page: per run, requests per step
//! stacked by how they ended (answered, degraded, failed), each provider's
//! fault windows beneath, and its attempts per step. Plain SVG, no script,
//! nothing fetched.

use std::fmt::Write as _;

use crate::report::{Report, clock};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 150.0;
const BARS: f64 = 200.0;
const LANE: f64 = 16.0;
const LINES: f64 = 120.0;
const COLOURS: [&str; 6] = ["#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#7f7f7f"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn fault_colour(kind: &str) -> &'static str {
    match kind {
        "status" => "#d62728",
        "rate_limited" => "#ff7f0e",
        "hang" | "stall" => "#7b1fa2",
        "refuse" => "#000000",
        "slow" | "slow_first_token" => "#bcbd22",
        _ => "#e377c2",
    }
}

/// One run's chart.
fn svg(r: &Report) -> String {
    let steps = &r.timeline.steps;
    let n = steps.len().max(1) as f64;
    let plot = WIDTH - LEFT - 10.0;
    let bar = plot / n;
    let x_of = |seconds: f64| LEFT + plot * (seconds / r.simulated_seconds).clamp(0.0, 1.0);
    let most = steps.iter().map(|s| s.requests).max().unwrap_or(1).max(1) as f64;
    let lanes = r.providers.len() as f64;
    let height = 20.0 + BARS + 10.0 + lanes * LANE + 16.0 + LINES + 24.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(s, r#"<text x="{LEFT}" y="12">requests per {} by how they ended</text>"#, clock(r.timeline.step_s));
    let base = 20.0 + BARS;
    for (i, st) in steps.iter().enumerate() {
        let x = LEFT + bar * i as f64;
        let mut y = base;
        for (count, colour, what) in [
            (st.answered, "#2ca02c", "answered"),
            (st.degraded, "#ffbf00", "degraded"),
            (st.failed, "#d62728", "failed"),
        ] {
            if count == 0 {
                continue;
            }
            let h = BARS * count as f64 / most;
            y -= h;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"><title>{}: {count} {what}</title></rect>"#,
                (bar - 0.5).max(0.5),
                clock(st.t_s)
            );
        }
    }
    let _ = write!(s, r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#, LEFT - 4.0, 28.0, most as u64);
    let _ = write!(s, r##"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="#444"/>"##, WIDTH - 10.0);
    // Fault windows, one lane per provider.
    let lanes_top = base + 10.0;
    for (i, p) in r.providers.iter().enumerate() {
        let y = lanes_top + LANE * i as f64;
        let _ = write!(
            s,
            r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#,
            LEFT - 4.0,
            y + 11.0,
            escape(&p.name)
        );
        let _ = write!(s, r##"<rect x="{LEFT}" y="{y}" width="{plot}" height="{}" fill="#f2f2f2"/>"##, LANE - 3.0);
        for f in r.faults.iter().filter(|f| f.provider == p.name) {
            let (x0, x1) = (x_of(f.from_s), x_of(f.to_s));
            let _ = write!(
                s,
                r#"<rect x="{x0:.1}" y="{y}" width="{:.1}" height="{}" fill="{}" fill-opacity="{:.2}"><title>{} {} from {} to {} ({:.0} % of requests)</title></rect>"#,
                (x1 - x0).max(1.0),
                LANE - 3.0,
                fault_colour(&f.kind),
                0.35 + 0.65 * f.share,
                escape(&p.name),
                f.kind,
                clock(f.from_s),
                clock(f.to_s),
                f.share * 100.0
            );
        }
    }
    // Attempts per provider per step.
    let lines_top = lanes_top + lanes * LANE + 16.0;
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="{:.0}">attempts per {} at each provider</text>"#,
        lines_top - 4.0,
        clock(r.timeline.step_s)
    );
    let peak = steps.iter().flat_map(|s| s.attempts.iter().copied()).max().unwrap_or(1).max(1) as f64;
    for (i, p) in r.providers.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = steps
            .iter()
            .enumerate()
            .map(|(k, st)| {
                let x = LEFT + bar * (k as f64 + 0.5);
                let y = lines_top + LINES - LINES * st.attempts[i] as f64 / peak;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ =
            write!(s, r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#, points.join(" "));
        let _ = write!(
            s,
            r#"<text x="{:.0}" y="{:.0}" text-anchor="end" fill="{colour}">{}</text>"#,
            LEFT - 4.0,
            lines_top + 12.0 + 12.0 * i as f64,
            escape(&p.name)
        );
    }
    let axis = lines_top + LINES;
    let _ = write!(s, r##"<line x1="{LEFT}" y1="{axis}" x2="{}" y2="{axis}" stroke="#444"/>"##, WIDTH - 10.0);
    for k in 0..=6 {
        let t = r.simulated_seconds * f64::from(k) / 6.0;
        let _ =
            write!(s, r#"<text x="{:.1}" y="{:.0}" text-anchor="middle">{}</text>"#, x_of(t), axis + 14.0, clock(t));
    }
    s.push_str("</svg>");
    s
}

fn summary(r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<p><b>{}</b>: success {:.2} % of {} requests (answered {}, degraded {}, failed {}); latency p50 {} ms, p99 {} ms; streams recovered {}.</p>",
        escape(&r.policy),
        r.success_rate * 100.0,
        r.requests,
        r.answered,
        r.degraded_total(),
        r.failed,
        r.latency_ms.p50,
        r.latency_ms.p99,
        r.recovered_streams
    );
    s.push_str("<table><tr><th>provider</th><th>attempts</th><th>healthy</th><th>faulted</th><th>cost $</th><th>back after its faults</th></tr>");
    for p in &r.providers {
        let back: Vec<String> = p
            .recoveries
            .iter()
            .map(|x| match x.back_after_s {
                Some(b) => format!("{} at {}: {}", x.fault, clock(x.ended_s), clock(b)),
                None => format!("{} at {}: not before the end", x.fault, clock(x.ended_s)),
            })
            .collect();
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td></tr>",
            escape(&p.name),
            p.attempts,
            p.healthy,
            p.faulted.values().sum::<u64>(),
            p.cost_usd,
            escape(&back.join("; "))
        );
    }
    s.push_str("</table>");
    s
}

/// A page with one chart per report (two for `--compare`).
pub fn html(reports: &[&Report]) -> String {
    let title = reports.first().map_or("simulation", |r| r.scenario.as_str());
    let mut page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>switchyard simulate: {}</title><style>body{{font-family:sans-serif;margin:20px;color:#222}}table{{border-collapse:collapse;margin:6px 0 18px}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}.key span{{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}}</style></head><body>",
        escape(title)
    );
    if let Some(r) = reports.first() {
        let _ =
            write!(page, "<h1>{}</h1><p>{} simulated, seed {}.</p>", escape(title), clock(r.simulated_seconds), r.seed);
    }
    page.push_str("<p class=\"key\"><span style=\"background:#2ca02c\"></span>answered<span style=\"background:#ffbf00\"></span>degraded<span style=\"background:#d62728\"></span>failed &nbsp; faults: <span style=\"background:#d62728\"></span>status<span style=\"background:#ff7f0e\"></span>rate limited<span style=\"background:#7b1fa2\"></span>hang/stall<span style=\"background:#000\"></span>refused<span style=\"background:#bcbd22\"></span>slow<span style=\"background:#e377c2\"></span>stream cut</p>");
    for r in reports {
        let _ = write!(page, "<h2>{}</h2>{}{}", escape(&r.policy), summary(r), svg(r));
    }
    page.push_str("</body></html>\n");
    page
}
