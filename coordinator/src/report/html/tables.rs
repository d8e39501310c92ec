//! The report's text: heading, notes, headline cards, the region, error
//! and agent tables, and the scenario as it was run. Every string from the
//! report goes through [`escape`].

use super::charts::region_color;
use crate::report::model::{RunReport, RunStatus, ScopeSummary};
use crate::report::svg::escape;
use crate::report::table::micros;
use std::fmt::Write;

pub(super) fn status_badge(report: &RunReport) -> String {
    let mut out = match report.status {
        RunStatus::Complete => r#"<span class="badge complete">complete</span>"#.to_owned(),
        RunStatus::Partial => r#"<span class="badge partial">partial</span>"#.to_owned(),
        RunStatus::Failed => r#"<span class="badge fail">failed</span>"#.to_owned(),
    };
    if report.thresholds.iter().any(|t| !t.passed) {
        out.push_str(r#"<span class="badge fail">thresholds failed</span>"#);
    }
    out
}

pub(super) fn subtitle(report: &RunReport) -> String {
    let mut out = format!(
        "run <code>{}</code> · {} → {} · {} agents in {} regions",
        escape(&report.run_id),
        escape(&report.started_at),
        escape(&report.ended_at),
        report.agents.len(),
        report.regions.len()
    );
    if let Some(series) = &report.series {
        let _ = write!(
            out,
            " · run {} of {} in series <code>{}</code>",
            series.run,
            series.runs,
            escape(&series.id)
        );
    }
    out
}

pub(super) fn notes(report: &RunReport) -> String {
    if report.notes.is_empty() && report.faults.is_empty() {
        return String::new();
    }
    let heading = match report.status {
        RunStatus::Complete => "Faults during the run (its figures are complete):",
        RunStatus::Partial => {
            "This run is partial: its figures cover only part of the planned load."
        }
        RunStatus::Failed => "This run failed: a lost agent stopped it (on_agent_loss: fail).",
    };
    let mut out = format!(r#"<div class="notes" role="note"><strong>{heading}</strong>"#);
    if report.faults.is_empty() {
        // A report from before faults were recorded.
        out.push_str("<ul>");
        for note in &report.notes {
            let _ = write!(out, "<li>{}</li>", escape(note));
        }
        out.push_str("</ul></div>");
        return out;
    }
    out.push_str(
        r#"<table class="faults"><thead><tr><th>at</th><th>what</th><th>agent</th><th>region</th><th>detail</th></tr></thead><tbody>"#,
    );
    for f in &report.faults {
        let _ = write!(
            out,
            "<tr><td>{:+.1} s</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            f.at_s,
            escape(&f.kind),
            escape(f.agent.as_deref().unwrap_or("")),
            escape(f.region.as_deref().unwrap_or("")),
            escape(&f.detail)
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

pub(super) fn cards(report: &RunReport) -> String {
    let g = &report.global;
    let l = &g.latency_us;
    let rps = match g.target_rps {
        Some(target) => format!("target {}", rate(target)),
        None => "closed model".to_owned(),
    };
    let cards = [
        (
            "requests",
            g.requests.to_string(),
            format!("{} succeeded", g.successes),
        ),
        ("throughput", format!("{} req/s", rate(g.achieved_rps)), rps),
        (
            "error rate",
            error_rate(g),
            format!("{} failed, {} interrupted", g.errors.total, g.interrupted),
        ),
        ("p50", micros(l.p50), "median latency".to_owned()),
        ("p99", micros(l.p99), format!("p90 {}", micros(l.p90))),
        ("p99.9", micros(l.p99_9), format!("max {}", micros(l.max))),
    ];
    let mut out = String::new();
    for (label, value, sub) in cards {
        let warn = if label == "error rate" && g.errors.total > 0 {
            " warn"
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<div class="card"><div class="label">{label}</div><div class="value{warn}">{}</div><div class="sub">{}</div></div>"#,
            escape(&value),
            escape(&sub)
        );
    }
    out
}

const FIGURE_HEADERS: [&str; 9] = [
    "requests",
    "rps (achieved / target)",
    "error rate",
    "p50",
    "p90",
    "p99",
    "p99.9",
    "max",
    "schedule lag p99",
];

pub(super) fn figure_cells(s: &ScopeSummary) -> String {
    let l = &s.latency_us;
    let rps = match s.target_rps {
        Some(t) => format!("{} / {}", rate(s.achieved_rps), rate(t)),
        None => rate(s.achieved_rps),
    };
    let error_class = if s.errors.total > 0 {
        " class=\"warn\""
    } else {
        ""
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<td>{}</td><td>{}</td><td{error_class}>{}</td>",
        s.requests,
        escape(&rps),
        escape(&error_rate(s))
    );
    for v in [l.p50, l.p90, l.p99, l.p99_9, l.max, s.schedule_lag_us.p99] {
        let _ = write!(out, "<td>{}</td>", escape(&micros(v)));
    }
    out
}

pub(super) fn header_row(first: &[&str]) -> String {
    let mut out = String::from("<tr>");
    for h in first {
        let _ = write!(out, r#"<th class="text">{h}</th>"#);
    }
    for h in FIGURE_HEADERS {
        let _ = write!(out, "<th>{h}</th>");
    }
    out.push_str("</tr>");
    out
}

pub(super) fn regions(report: &RunReport) -> String {
    let mut out = format!(
        r#"<div class="table-scroll"><table><caption>Latency of successful requests over the whole run, per region</caption><thead>{}</thead><tbody>"#,
        header_row(&["region", "agents"])
    );
    for (i, r) in report.regions.iter().enumerate() {
        let _ = write!(
            out,
            r#"<tr><td class="name"><span class="key c{}"></span>{}</td><td>{}</td>{}</tr>"#,
            region_color(i),
            escape(&r.name),
            r.agents,
            figure_cells(&r.summary)
        );
    }
    let _ = write!(
        out,
        r#"</tbody><tfoot><tr><td class="name"><span class="key c0"></span>all regions</td><td>{}</td>{}</tr></tfoot></table></div>"#,
        report.agents.len(),
        figure_cells(&report.global)
    );
    out
}

pub(super) fn error_classes(report: &RunReport) -> String {
    let mut out = String::from(
        r#"<div class="table-scroll"><table><caption>Failed requests by class, and requests cut off by the end of the run (neither successes nor failures)</caption><thead><tr><th class="text">region</th><th>connect</th><th>tls</th><th>timeout</th><th>4xx</th><th>5xx</th><th>other</th><th>total failed</th><th>interrupted</th><th class="text">status codes</th></tr></thead><tbody>"#,
    );
    let row = |name: &str, s: &ScopeSummary| {
        let e = &s.errors;
        let codes: Vec<String> = s
            .status_codes
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .chain(s.grpc_codes.iter().map(|(code, n)| format!("{code}: {n}")))
            .collect();
        format!(
            r#"<td class="name">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="text">{}</td>"#,
            escape(name),
            e.connect,
            e.tls,
            e.timeout,
            e.status_4xx,
            e.status_5xx,
            e.other,
            e.total,
            s.interrupted,
            escape(&codes.join(", "))
        )
    };
    for r in &report.regions {
        let _ = write!(out, "<tr>{}</tr>", row(&r.name, &r.summary));
    }
    let _ = write!(
        out,
        "</tbody><tfoot><tr>{}</tr></tfoot></table></div>",
        row("all regions", &report.global)
    );
    out
}

pub(super) fn agents(report: &RunReport) -> String {
    let mut out = format!(
        r#"<div class="table-scroll"><table><caption>Each agent's own figures (its requests only)</caption><thead>{}</thead><tbody>"#,
        header_row(&["agent", "region", "zone", "host", "state", "intervals"])
    );
    for a in &report.agents {
        let state_class = if a.state == "finished" {
            "text"
        } else {
            "text warn"
        };
        let _ = write!(
            out,
            r#"<tr><td class="text"><code>{}</code></td><td class="text">{}</td><td class="text">{}</td><td class="text">{}</td><td class="{state_class}">{}</td><td>{}</td>{}</tr>"#,
            escape(&a.id),
            escape(&a.region),
            escape(&a.zone),
            escape(&a.hostname),
            escape(&a.state),
            a.intervals,
            figure_cells(&a.summary)
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

pub(super) fn scenario(report: &RunReport) -> String {
    let s = &report.scenario;
    let mut rows: Vec<(&str, String)> = vec![("name", s.name.clone()), ("model", s.model.clone())];
    if let Some(r) = s.rate {
        rows.push(("rate", format!("{} req/s across all regions", rate(r))));
    }
    if let Some(a) = &s.arrival {
        rows.push(("arrival", a.clone()));
    }
    if let Some(seed) = s.seed {
        rows.push(("seed", seed.to_string()));
    }
    rows.push(("connections", s.connections.to_string()));
    rows.push(("duration", format!("{} s", s.duration_s)));
    if s.warmup_s > 0.0 {
        rows.push((
            "warm-up",
            format!(
                "the first {} s: sent, shaded on the charts, left out of every figure",
                s.warmup_s
            ),
        ));
    }
    rows.push(("interval", format!("{} s", s.interval_s)));
    match &s.grpc_method {
        Some(method) => rows.push(("gRPC call", format!("{method} at {}", s.url))),
        None => rows.push(("request", format!("{} {}", s.method, s.url))),
    }
    for (region, url) in &s.region_urls {
        rows.push(("region URL", format!("{region}: {url}")));
    }
    if let Some(file) = &s.data_file {
        let mut data = file.clone();
        if let Some(rows) = s.data_rows {
            let _ = write!(data, ", {rows} rows");
        }
        if let Some(order) = &s.data_order {
            let _ = write!(data, ", taken in {order} order");
        }
        rows.push(("data file", data));
    }
    if let Some(series) = &report.series {
        rows.push((
            "series",
            format!(
                "run {} of {}, series {}",
                series.run, series.runs, series.id
            ),
        ));
    }
    rows.push((
        "tool",
        format!("{} {}", report.tool.name, report.tool.version),
    ));
    rows.push(("run id", report.run_id.clone()));
    rows.push(("started", report.started_at.clone()));
    rows.push(("ended", report.ended_at.clone()));
    rows.push(("status", report.status.as_str().to_owned()));
    let mut out = String::from(r#"<dl class="scenario">"#);
    for (k, v) in rows {
        let _ = write!(out, "<dt>{k}</dt><dd>{}</dd>", escape(&v));
    }
    out.push_str("</dl>");
    out
}

/// A rate with one decimal (600.0), as the terminal table shows it.
pub(super) fn rate(r: f64) -> String {
    format!("{r:.1}")
}

/// Failed over completed requests; "-" when nothing completed, and never a
/// misleading "0.00%" when something did fail.
fn error_rate(s: &ScopeSummary) -> String {
    if s.requests == 0 {
        return "-".to_owned();
    }
    let pct = 100.0 * s.errors.total as f64 / s.requests as f64;
    if s.errors.total > 0 && pct < 0.01 {
        "<0.01%".to_owned()
    } else {
        format!("{pct:.2}%")
    }
}
