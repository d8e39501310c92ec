//! The trend section: the headline figures of the scenario's last runs
//! (from the history of a standing coordinator), so a slow drift shows.
//! Rendered only when a trend is given; a plain report file has none.

use super::charts::figure;
use crate::history::TrendPoint;
use crate::report::svg::{self, Chart, Marks, Series, Size, XAxis, escape};
use crate::report::table::micros;
use std::fmt::Write;

/// The section, heading included; empty without at least one earlier run.
pub(super) fn trend(points: &[TrendPoint]) -> String {
    if points.len() < 2 {
        return String::new();
    }
    let at = |f: &dyn Fn(&TrendPoint) -> f64| -> Vec<(f64, f64)> {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| ((i + 1) as f64, f(p)))
            .collect()
    };
    let series = |label: &str, color, dashed, f: &dyn Fn(&TrendPoint) -> f64| Series {
        label: label.into(),
        points: at(f),
        color,
        dashed,
    };
    let number = |v: f64| svg::number(v);
    let throughput = figure(&Chart {
        title: "Throughput, run by run",
        size: Size::NARROW,
        x: XAxis::Linear { unit: "" },
        x_label: "run (oldest first)",
        y_label: "requests per second",
        y_format: &number,
        y_unit: " req/s",
        y_counts: false,
        series: vec![series("achieved rps", 0, false, &|p| {
            p.summary.achieved_rps
        })],
        marks: &Marks::NONE,
    });
    let latency = figure(&Chart {
        title: "Latency, run by run",
        size: Size::NARROW,
        x: XAxis::Linear { unit: "" },
        x_label: "run (oldest first)",
        y_label: "ms",
        y_format: &number,
        y_unit: " ms",
        y_counts: false,
        series: vec![
            series("p50", 1, false, &|p| p.summary.p50_us as f64 / 1000.0),
            series("p99", 1, true, &|p| p.summary.p99_us as f64 / 1000.0),
        ],
        marks: &Marks::NONE,
    });
    let mut rows = String::new();
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{:.1}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2}%</td></tr>",
            i + 1,
            escape(p.id.get(..8).unwrap_or(&p.id)),
            escape(&submitted(p.submitted_at_ms)),
            escape(p.git_sha.as_deref().unwrap_or("")),
            escape(&p.state),
            p.summary.achieved_rps,
            escape(&micros(p.summary.p50_us)),
            escape(&micros(p.summary.p99_us)),
            p.summary.error_rate * 100.0,
        );
    }
    format!(
        "<section><h2>Trend</h2><p class=\"hint\">This scenario's last {} runs from the coordinator's history, this one \
         last: a slow drift shows here before any single run fails.</p><div class=\"grid\">{throughput}{latency}</div>\
         <table><thead><tr><th>#</th><th>run</th><th>submitted</th><th>git</th><th>state</th><th>rps</th><th>p50</th>\
         <th>p99</th><th>errors</th></tr></thead><tbody>{rows}</tbody></table></section>",
        points.len()
    )
}

fn submitted(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}
