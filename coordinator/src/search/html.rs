//! The search as one self-contained HTML page: the answer, a
//! latency-vs-throughput chart per leg (the knee where latency leaves the
//! floor is the capacity), and every probe. It borrows the run report's
//! style sheet and chart renderer; like that page it runs no script and
//! fetches nothing, and every string from the report is escaped.

use super::judge::level_text;
use super::report::{ProbeReport, SearchReport};
use crate::report::svg::{self, Chart, Series, Size, XAxis, escape};
use crate::report::table::micros;
use std::fmt::Write;
use std::path::Path;

const STYLE: &str = include_str!("../report/html/style.css");

/// The chart of one leg: p50, p99 and p99.9 (ms) against the load, one
/// point per probe. Open model: the rate offered (past the capacity the
/// completed rate stalls at it, so offered load spreads the knee out);
/// closed model: the requests/s the connections completed.
pub fn latency_vs_throughput(scope: &str, unit: &str, probes: &[&ProbeReport]) -> String {
    let offered = unit == "req/s";
    let x = |p: &ProbeReport| if offered { p.level } else { p.achieved_rps };
    let mut sorted: Vec<&ProbeReport> = probes.to_vec();
    sorted.sort_by(|a, b| x(a).total_cmp(&x(b)));
    let series = |label: &str, color: usize, dashed: bool, us: fn(&ProbeReport) -> u64| Series {
        label: format!("{scope} {label}"),
        points: sorted.iter().map(|p| (x(p), us(p) as f64 / 1e3)).collect(),
        color,
        dashed,
    };
    let title = format!("{scope}: latency against throughput");
    let format = |ms: f64| format!("{}ms", svg::number(ms));
    let chart = Chart {
        title: &title,
        size: Size::WIDE,
        x: XAxis::Linear { unit: "" },
        x_label: if offered {
            "requests per second offered"
        } else {
            "requests per second completed"
        },
        y_label: "latency (ms)",
        y_format: &format,
        y_unit: "",
        y_counts: false,
        series: vec![
            series("p50", 1, false, |p| p.p50_us),
            series("p99", 6, false, |p| p.p99_us),
            series("p99.9", 6, true, |p| p.p99_9_us),
        ],
        marks: &svg::Marks::NONE,
    };
    let mut out = format!(
        r#"<figure class="plot"><h3>{}</h3>{}<ul class="legend">"#,
        escape(&title),
        svg::render(&chart)
    );
    for s in &chart.series {
        let _ = write!(
            out,
            r#"<li class="c{}"><span class="swatch{}"></span><span>{}</span></li>"#,
            s.color,
            if s.dashed { " dashed" } else { "" },
            escape(&s.label)
        );
    }
    out.push_str("</ul></figure>");
    out
}

/// Renders the page.
pub fn render(report: &SearchReport) -> String {
    let name = escape(&report.scenario);
    let mut body = String::new();
    body.push_str(r#"<section><h2>Answer</h2><ul>"#);
    for line in &report.summary {
        let _ = write!(body, "<li>{}</li>", escape(line));
    }
    body.push_str("</ul></section>");
    for leg in &report.legs {
        let probes: Vec<&ProbeReport> = report
            .probes
            .iter()
            .filter(|p| p.scope == leg.scope)
            .collect();
        let _ = write!(
            body,
            r#"<section><p class="hint">Each point is one probe's measured step. Past the capacity, latency leaves its floor: the knee.</p>{}</section>"#,
            latency_vs_throughput(&leg.scope, &report.unit, &probes)
        );
    }
    let _ = write!(
        body,
        r#"<section><h2>Probes</h2><div class="table-scroll"><table><thead><tr><th>probe</th><th class="text">scope</th><th>level ({})</th><th>req/s completed</th><th>error rate</th><th>p50</th><th>p99</th><th>p99.9</th><th>lag p99</th><th class="text">verdict</th><th class="text">why</th><th class="text">report</th></tr></thead><tbody>"#,
        escape(&report.unit)
    );
    for p in &report.probes {
        let why = p
            .failed
            .iter()
            .chain(p.note.iter())
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        let verdict_class = if p.verdict == "pass" {
            "text"
        } else {
            "text warn"
        };
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td class="text">{}</td><td>{}</td><td>{:.1}</td><td>{:.3}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="{verdict_class}">{}</td><td class="text name">{}</td><td class="text"><code>{}</code></td></tr>"#,
            p.index,
            escape(&p.scope),
            level_text(p.level),
            p.achieved_rps,
            p.error_rate * 100.0,
            micros(p.p50_us),
            micros(p.p99_us),
            micros(p.p99_9_us),
            micros(p.schedule_lag_p99_us),
            escape(&p.verdict.replace('_', " ")),
            escape(&why),
            escape(&p.report),
        );
    }
    body.push_str("</tbody></table></div></section>");
    let subtitle = format!(
        "{} model · {} · SLO {} · {} to {} {} · tolerance {}",
        report.model,
        report.mode,
        report.slo.join(", "),
        level_text(report.min),
        level_text(report.max),
        report.unit,
        report.tolerance
    );
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'">
<title>{name} · Stampede capacity search</title>
<style>
{STYLE}
</style>
</head>
<body>
<header class="page-header"><div class="wrap"><p class="eyebrow">Stampede capacity search</p><h1>{name}</h1><p class="meta">{}</p></div></header>
<main class="wrap">
{body}
</main>
</body>
</html>
"#,
        escape(&subtitle)
    )
}

/// Writes the page (to a temporary file, then renamed).
pub fn write(report: &SearchReport, path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, render(report))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(index: u32, rps: f64, p99_us: u64, verdict: &str) -> ProbeReport {
        ProbeReport {
            index,
            scope: "eu-west".into(),
            level: rps,
            total_level: rps,
            run_id: format!("run-{index}"),
            report: format!("r-{index}.json"),
            target_rps: Some(rps),
            achieved_rps: rps,
            requests: 100,
            error_rate: 0.0,
            p50_us: p99_us / 2,
            p90_us: p99_us,
            p95_us: p99_us,
            p99_us,
            p99_9_us: p99_us * 2,
            max_us: p99_us * 2,
            mean_us: p99_us as f64 / 2.0,
            schedule_lag_p99_us: 100,
            verdict: verdict.into(),
            failed: Vec::new(),
            failed_metrics: Vec::new(),
            note: None,
        }
    }

    #[test]
    fn a_chart_per_leg_and_every_probe_escaped() {
        let probes = vec![
            probe(1, 100.0, 2_000, "pass"),
            probe(2, 400.0, 900_000, "fail"),
            probe(3, 200.0, 2_500, "pass"),
        ];
        let report = SearchReport {
            schema_version: 1,
            search_id: "s".into(),
            scenario: "<script>alert(1)</script>".into(),
            model: "open".into(),
            unit: "req/s".into(),
            mode: "per-region".into(),
            base: Some(50.0),
            slo: vec!["p99 < 250ms".into()],
            min: 100.0,
            max: 400.0,
            start: 100.0,
            tolerance: "5%".into(),
            step_s: 1.0,
            settle_s: 1.0,
            max_schedule_lag_us: Some(5_000),
            outcome: "found".into(),
            summary: vec!["eu-west sustains 200 req/s at p99 2.50ms".into()],
            legs: vec![super::super::report::LegReport {
                scope: "eu-west".into(),
                outcome: "found".into(),
                sustainable: Some(200.0),
                sustainable_probe: Some(3),
                next_failed: Some(400.0),
                next_failed_probe: Some(2),
                summary: "eu-west sustains 200 req/s at p99 2.50ms".into(),
            }],
            probes,
        };
        let page = render(&report);
        assert!(
            !page.contains("<script>"),
            "markup from the report stays text"
        );
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_eq!(page.matches("<svg class=\"chart\"").count(), 1);
        assert!(page.contains("eu-west: latency against throughput"));
        assert!(page.contains("eu-west sustains 200 req/s at p99 2.50ms"));
        assert_eq!(page.matches("<tr><td>").count(), 3);
        assert!(page.contains("<code>r-2.json</code>"));
    }
}
