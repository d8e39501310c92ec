//! The search on the terminal: one row per probe, then each leg's answer in
//! a sentence.

use super::judge::level_text;
use super::report::SearchReport;
use crate::report::table::micros;
use std::fmt::Write;

pub fn render(report: &SearchReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "capacity search {:?} ({} model, {}): SLO {}",
        report.scenario,
        report.model,
        match report.base {
            Some(base) => format!(
                "each region in turn, the others at {} {}",
                level_text(base),
                report.unit
            ),
            None => "the whole cluster".to_owned(),
        },
        report.slo.join(", ")
    );
    let level_header = format!("level ({})", report.unit);
    let header = [
        "probe",
        "scope",
        level_header.as_str(),
        "rps",
        "errors",
        "p50",
        "p99",
        "p99.9",
        "lag p99",
        "verdict",
    ];
    let rows: Vec<[String; 10]> = report
        .probes
        .iter()
        .map(|p| {
            let verdict = match (p.verdict.as_str(), p.failed_metrics.is_empty()) {
                ("fail", false) => format!("fail ({})", p.failed_metrics.join(", ")),
                (v, _) => v.replace('_', " "),
            };
            [
                p.index.to_string(),
                p.scope.clone(),
                level_text(p.level),
                format!("{:.1}", p.achieved_rps),
                format!("{:.3}%", p.error_rate * 100.0),
                micros(p.p50_us),
                micros(p.p99_us),
                micros(p.p99_9_us),
                micros(p.schedule_lag_p99_us),
                verdict,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Text columns to the left, figures to the right.
            let left = matches!(i, 1 | 9);
            let pad = w.saturating_sub(cell.chars().count());
            if i > 0 {
                text.push_str("  ");
            }
            if left {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        text.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(&header));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
    out.push('\n');
    for s in &report.summary {
        let _ = writeln!(out, "{s}");
    }
    out.trim_end().to_owned()
}
