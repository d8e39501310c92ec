//! The report's optional sections, each shown only when the run has it:
//! the thresholds' verdicts (failed ones first and loud), the stages of a
//! staged run, and the requests of a mix. Every string from the report goes
//! through [`escape`].

use super::tables::{figure_cells, header_row, rate};
use crate::report::model::{RunReport, ScopeSummary};
use crate::report::svg::escape;
use crate::report::table::{micros, phase_cells};
use crate::report::thresholds::show;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A banner under the heading: which thresholds failed, or that all passed.
pub(super) fn verdict(report: &RunReport) -> String {
    let all = &report.thresholds;
    if all.is_empty() {
        return String::new();
    }
    let failed = crate::report::thresholds::failures(report);
    if failed.is_empty() {
        return format!(
            r#"<div class="verdict pass" role="status"><strong>All {} threshold check(s) passed.</strong></div>"#,
            all.len()
        );
    }
    let mut out = format!(
        r#"<div class="verdict fail" role="alert"><strong>{} of {} threshold check(s) failed: the run fails (exit code 99).</strong><ul>"#,
        failed.len(),
        all.len()
    );
    for line in failed {
        let _ = write!(out, "<li>{}</li>", escape(&line));
    }
    out.push_str("</ul></div>");
    out
}

/// Every threshold check: the figure against its limit, failed rows marked.
pub(super) fn thresholds(report: &RunReport) -> String {
    if report.thresholds.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        r#"<section id="thresholds"><h2>Thresholds</h2><p class="hint">The scenario's pass/fail criteria, judged on the whole run's merged figures (warm-up excluded). A check with no data fails.</p><div class="table-scroll"><table><thead><tr><th class="text">verdict</th><th class="text">threshold</th><th class="text">scope</th><th>limit</th><th>measured</th></tr></thead><tbody>"#,
    );
    for t in &report.thresholds {
        let (row, verdict) = if t.passed {
            ("", r#"<span class="badge complete">pass</span>"#)
        } else {
            (
                r#" class="fail""#,
                r#"<span class="badge fail">FAIL</span>"#,
            )
        };
        let actual = t
            .actual
            .map_or_else(|| "no data".to_owned(), |a| show(&t.metric, a));
        let _ = write!(
            out,
            r#"<tr{row}><td class="text">{verdict}</td><td class="text"><code>{}</code></td><td class="text">{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&t.threshold),
            escape(&t.scope),
            escape(&show(&t.metric, t.limit)),
            escape(&actual)
        );
    }
    out.push_str("</tbody></table></div></section>");
    out
}

/// One row per phase of a staged run, then each phase per region (folded).
pub(super) fn stages(report: &RunReport) -> String {
    if report.stages.is_empty() {
        return String::new();
    }
    let unit = if report.scenario.model == "open" {
        "req/s"
    } else {
        "connections"
    };
    let mut out = format!(
        r#"<section id="stages"><h2>Stages</h2><p class="hint">Each phase's figures come from the merged histograms of its own intervals (level in {unit}). The warm-up is shown but left out of every total.</p><div class="table-scroll"><table><thead>{}</thead><tbody>"#,
        header_row(&["phase", "time", "level"])
    );
    let cells = |name: &str, s: &crate::report::model::StageReport, summary: &ScopeSummary| {
        let level = if s.level_from == s.level_to {
            rate(s.level_to)
        } else {
            format!("{} → {}", rate(s.level_from), rate(s.level_to))
        };
        format!(
            r#"<td class="text">{}</td><td class="text">{}–{} s</td><td>{}</td>{}"#,
            escape(name),
            rate(s.start_s),
            rate(s.end_s),
            escape(&level),
            figure_cells(summary)
        )
    };
    for s in &report.stages {
        let class = if s.warmup { r#" class="muted""# } else { "" };
        let name = if s.warmup {
            format!("{} (warm-up)", s.name)
        } else {
            s.name.clone()
        };
        let _ = write!(out, "<tr{class}>{}</tr>", cells(&name, s, &s.global));
    }
    out.push_str("</tbody></table></div>");
    let mut per_region = String::new();
    for s in &report.stages {
        for (region, summary) in in_report_order(report, &s.regions) {
            let _ = write!(
                per_region,
                "<tr>{}</tr>",
                cells(&format!("{} · {region}", s.name), s, summary)
            );
        }
    }
    let _ = write!(
        out,
        r#"<details><summary>Each phase per region</summary><div class="table-scroll"><table><thead>{}</thead><tbody>{per_region}</tbody></table></div></details></section>"#,
        header_row(&["phase · region", "time", "level"])
    );
    out
}

/// One row per request of a mix, then each request per region (folded).
pub(super) fn requests(report: &RunReport) -> String {
    if report.requests.is_empty() {
        return String::new();
    }
    let mut out = format!(
        r#"<section id="requests"><h2>Requests</h2><p class="hint">Each request of the mix over the whole run, all regions together (warm-up excluded). Share: its weight among the sends.</p><div class="table-scroll"><table><thead>{}</thead><tbody>"#,
        header_row(&["request", "method", "URL", "share"])
    );
    let cells = |name: &str, r: &crate::report::model::RequestReport, summary: &ScopeSummary| {
        format!(
            r#"<td class="text">{}</td><td class="text">{}</td><td class="text url">{}</td><td>{:.1}%</td>{}"#,
            escape(name),
            escape(&r.method),
            escape(if r.url.is_empty() {
                "(the target's URL)"
            } else {
                &r.url
            }),
            r.share * 100.0,
            figure_cells(summary)
        )
    };
    for r in &report.requests {
        let _ = write!(out, "<tr>{}</tr>", cells(&r.name, r, &r.global));
    }
    out.push_str("</tbody></table></div>");
    let mut per_region = String::new();
    for r in &report.requests {
        for (region, summary) in in_report_order(report, &r.regions) {
            let _ = write!(
                per_region,
                "<tr>{}</tr>",
                cells(&format!("{} · {region}", r.name), r, summary)
            );
        }
    }
    let _ = write!(
        out,
        r#"<details><summary>Each request per region</summary><div class="table-scroll"><table><thead>{}</thead><tbody>{per_region}</tbody></table></div></details></section>"#,
        header_row(&["request · region", "method", "URL", "share"])
    );
    out
}

/// A scenario with endpoints: the cross-region matrix, a row per agent
/// region and a column per endpoint.
pub(super) fn matrix(report: &RunReport) -> String {
    if report.matrix.is_empty() {
        return String::new();
    }
    let mut endpoints: Vec<&str> = Vec::new();
    for c in &report.matrix {
        if !endpoints.contains(&c.endpoint.as_str()) {
            endpoints.push(&c.endpoint);
        }
    }
    let mut out = String::from(
        r#"<section id="matrix"><h2>Cross-region matrix</h2><p class="hint">What each agent region saw of each endpoint: p50 / p99 latency, throughput and errors, from the merged histograms of the pair (warm-up excluded). A region's cells add up to its row in the regions table.</p><div class="table-scroll"><table><thead><tr><th class="text">agent region → endpoint</th>"#,
    );
    for e in &endpoints {
        let _ = write!(out, "<th>{}</th>", escape(e));
    }
    out.push_str("</tr></thead><tbody>");
    for region in &report.regions {
        let _ = write!(out, r#"<tr><td class="text">{}</td>"#, escape(&region.name));
        for e in &endpoints {
            match report
                .matrix
                .iter()
                .find(|c| c.region == region.name && c.endpoint == *e)
            {
                Some(c) => {
                    let s = &c.summary;
                    let _ = write!(
                        out,
                        "<td>{} / {}<br><small>{} · {} errors</small></td>",
                        micros(s.latency_us.p50),
                        micros(s.latency_us.p99),
                        rate(s.achieved_rps),
                        s.errors.total
                    );
                }
                None => out.push_str("<td>–</td>"),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div></section>");
    out
}

/// Request phase timings per region and globally: where the time went
/// (DNS, connect, TLS, time to first byte, transfer), connection reuse, and
/// the addresses the connections went to.
pub(super) fn phases(report: &RunReport) -> String {
    let Some(global) = &report.global.phases else {
        return String::new();
    };
    let mut out = String::from(
        r#"<section id="phases"><h2>Request phases</h2><p class="hint">p50 / p99 of each phase, merged from every agent's histograms (warm-up excluded). Wait (time to first byte): from the request written on a ready connection to the response's first byte. Transfer: first byte to last. Connect and TLS are per new connection (a keep-alive request has none); DNS is per lookup, made apart from requests (at the start and on every <code>target.dns_refresh</code>).</p><div class="table-scroll"><table><thead><tr><th class="text">region</th><th>new connections/s</th><th>requests per connection</th><th>DNS</th><th>connect</th><th>TLS</th><th>wait (TTFB)</th><th>transfer</th><th class="text">addresses (connections)</th></tr></thead><tbody>"#,
    );
    let row = |name: &str, p: &crate::report::model::PhaseSummary| {
        let addresses: Vec<String> = p
            .addresses
            .iter()
            .map(|a| format!("{} ({})", escape(&a.address), a.connections))
            .collect();
        let mut row = format!(r#"<tr><td class="text">{}</td>"#, escape(name));
        for cell in phase_cells(p, "–") {
            let _ = write!(row, "<td>{cell}</td>");
        }
        let _ = write!(
            row,
            r#"<td class="text">{}</td></tr>"#,
            addresses.join("<br>")
        );
        row
    };
    for region in &report.regions {
        if let Some(p) = &region.summary.phases {
            out.push_str(&row(&region.name, p));
        }
    }
    out.push_str(&row("global", global));
    out.push_str("</tbody></table></div></section>");
    out
}

/// Model-serving runs: TTFT, TPOT, ITL, tokens and goodput per region and
/// globally, with the definitions the figures follow.
pub(super) fn llm(report: &RunReport) -> String {
    let Some(global) = &report.global.llm else {
        return String::new();
    };
    let mut out = String::from(
        r#"<section id="llm"><h2>Model serving</h2><p class="hint">TTFT: from the intended send to the first chunk that carries content. TPOT: (end to end − TTFT) / (output tokens − 1). ITL: every gap between content chunks (per token: the gap over the chunk's tokens). Tokens/s per request: output tokens over the request's end-to-end time. Goodput: successful requests that met every limit of the scenario's <code>llm.goodput</code>. Warm-up excluded.</p><div class="table-scroll"><table><thead><tr><th class="text">region</th><th>TTFT p50</th><th>TTFT p99</th><th>TPOT p50</th><th>TPOT p99</th><th>ITL p50</th><th>ITL p99</th><th>ITL/token p50</th><th>output tok/s</th><th>tok/s per request p50</th><th>goodput</th><th class="text">tokens counted from</th></tr></thead><tbody>"#,
    );
    let row = |name: &str, l: &crate::report::model::LlmSummary| {
        format!(
            r#"<tr><td class="text">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{:.1}/s ({:.1}%)</td><td class="text">{}</td></tr>"#,
            escape(name),
            micros(l.ttft_us.p50),
            micros(l.ttft_us.p99),
            micros(l.tpot_us.p50),
            micros(l.tpot_us.p99),
            micros(l.itl_us.p50),
            micros(l.itl_us.p99),
            micros(l.itl_per_token_us.p50),
            l.output_tokens_per_second,
            l.request_tokens_per_second.p50,
            l.goodput_rps,
            l.goodput_ratio * 100.0,
            escape(&l.token_count_source),
        )
    };
    for region in &report.regions {
        if let Some(l) = &region.summary.llm {
            out.push_str(&row(&region.name, l));
        }
    }
    out.push_str(&row("global", global));
    out.push_str("</tbody></table></div>");
    if global.malformed + global.truncated > 0 {
        let _ = write!(
            out,
            r#"<p class="warn">{} malformed responses and {} streams cut before their end (counted as errors).</p>"#,
            global.malformed, global.truncated
        );
    }
    let _ = write!(
        out,
        "<p>{} output and {} input tokens in all.</p></section>",
        global.output_tokens, global.input_tokens
    );
    out
}

/// `figures` in the order of the report's regions (any other last).
fn in_report_order<'a>(
    report: &RunReport,
    figures: &'a BTreeMap<String, ScopeSummary>,
) -> Vec<(&'a str, &'a ScopeSummary)> {
    let mut out: Vec<(&str, &ScopeSummary)> = report
        .regions
        .iter()
        .filter_map(|r| figures.get_key_value(&r.name))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    for (k, v) in figures {
        if !out.iter().any(|(name, _)| name == k) {
            out.push((k, v));
        }
    }
    out
}
