//! The terminal table printed at the end of a run (and by `stampede report`).

use super::model::{RunReport, RunStatus, ScopeSummary};
use std::fmt::Write;

/// Renders the per-region and global summary table.
pub fn render(report: &RunReport) -> String {
    let s = &report.scenario;
    let mut out = String::new();
    let load = match s.rate {
        Some(rate) if !report.stages.is_empty() => {
            format!("open model, staged, mean {} req/s", trim_float(rate))
        }
        Some(rate) => format!("open model, {} req/s", trim_float(rate)),
        None => "closed model".to_owned(),
    };
    let status = match report.status {
        RunStatus::Complete => "complete",
        RunStatus::Partial => "PARTIAL",
        RunStatus::Failed => "FAILED",
    };
    let _ = writeln!(
        out,
        "run {} \"{}\": {load}, {} connections, {}s, {} agents in {} regions, {status}",
        report.run_id,
        s.name,
        s.connections,
        trim_float(s.duration_s),
        report.agents.len(),
        report.regions.len(),
    );
    if let Some(method) = &s.grpc_method {
        let _ = writeln!(out, "  gRPC {method} at {}", s.url);
    }
    // Faults say what the notes say, with time and place; reports from
    // before faults were recorded have only notes.
    if report.faults.is_empty() {
        for note in &report.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    for fault in &report.faults {
        let who = match (&fault.agent, &fault.region) {
            (Some(agent), Some(region)) => format!(" agent {agent} ({region})"),
            (Some(agent), None) => format!(" agent {agent}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  fault at {:+.1}s: {}{who}: {}",
            fault.at_s, fault.kind, fault.detail
        );
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "  WARNING: {warning}");
    }
    let _ = writeln!(out);

    if s.warmup_s > 0.0 {
        let _ = writeln!(
            out,
            "warm-up: the first {}s are left out of every figure below\n",
            trim_float(s.warmup_s)
        );
    }
    let mut rows: Vec<Vec<String>> = vec![header("region", "agents")];
    for region in &report.regions {
        rows.push(row(
            &region.name,
            region.agents.to_string(),
            &region.summary,
        ));
    }
    rows.push(row(
        "global",
        report.agents.len().to_string(),
        &report.global,
    ));
    write_table(&mut out, &rows, true);

    if !report.matrix.is_empty() {
        write_matrix(&mut out, report);
    }

    if report.global.phases.is_some() {
        write_phases(&mut out, report);
    }

    if report.global.llm.is_some() {
        let _ = writeln!(
            out,
            "\nmodel serving (TTFT: to the first content chunk; TPOT: (e2e - TTFT) / (tokens - 1); ITL: gaps between chunks):"
        );
        let mut rows: Vec<Vec<String>> = vec![
            [
                "region",
                "TTFT p50",
                "TTFT p99",
                "TPOT p50",
                "TPOT p99",
                "ITL p50",
                "ITL p99",
                "out tok/s",
                "tok/s/req p50",
                "goodput",
                "tokens from",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        let llm_row = |name: &str, l: &super::model::LlmSummary| {
            vec![
                name.to_owned(),
                micros(l.ttft_us.p50),
                micros(l.ttft_us.p99),
                micros(l.tpot_us.p50),
                micros(l.tpot_us.p99),
                micros(l.itl_us.p50),
                micros(l.itl_us.p99),
                format!("{:.1}", l.output_tokens_per_second),
                l.request_tokens_per_second.p50.to_string(),
                format!("{:.1}/s ({:.1}%)", l.goodput_rps, l.goodput_ratio * 100.0),
                l.token_count_source.clone(),
            ]
        };
        for region in &report.regions {
            if let Some(l) = &region.summary.llm {
                rows.push(llm_row(&region.name, l));
            }
        }
        if let Some(l) = &report.global.llm {
            rows.push(llm_row("global", l));
        }
        write_table(&mut out, &rows, true);
        if let Some(l) = &report.global.llm {
            if l.malformed + l.truncated > 0 {
                let _ = writeln!(
                    out,
                    "model-serving failures: {} malformed responses, {} streams cut before [DONE]",
                    l.malformed, l.truncated
                );
            }
        }
    }

    if !report.requests.is_empty() {
        let _ = writeln!(out, "\nrequests (the mix, all regions):");
        let mut rows: Vec<Vec<String>> = vec![header("request", "share")];
        for r in &report.requests {
            rows.push(row(&r.name, format!("{:.0}%", r.share * 100.0), &r.global));
        }
        write_table(&mut out, &rows, false);
    }

    if !report.stages.is_empty() {
        let unit = if s.rate.is_some() {
            "req/s"
        } else {
            "connections"
        };
        let _ = writeln!(
            out,
            "\nstages (each from its own intervals; level in {unit}):"
        );
        let mut rows: Vec<Vec<String>> = vec![header("stage", "seconds")];
        for stage in &report.stages {
            let name = if stage.warmup {
                format!("{} (excluded)", stage.name)
            } else {
                stage.name.clone()
            };
            let span = format!("{}-{}", trim_float(stage.start_s), trim_float(stage.end_s));
            rows.push(row(&name, span, &stage.global));
        }
        write_table(&mut out, &rows, false);
    }

    if !report.thresholds.is_empty() {
        let passed = report.thresholds.iter().filter(|t| t.passed).count();
        let _ = writeln!(
            out,
            "\nthresholds: {passed} of {} passed",
            report.thresholds.len()
        );
        for t in &report.thresholds {
            let actual = t.actual.map_or_else(
                || "no data".to_owned(),
                |a| super::thresholds::show(&t.metric, a),
            );
            let scope = if t.scope == "global" || t.threshold.starts_with(&format!("{}:", t.scope))
            {
                String::new()
            } else {
                format!(" in {}", t.scope)
            };
            let verdict = if t.passed { "pass" } else { "FAIL" };
            let _ = writeln!(out, "  {verdict}  {}{scope}: {actual}", t.threshold);
        }
    }

    if let Some(c) = &report.cost {
        let mut parts = Vec::new();
        if let Some(m) = c.usd_per_million_requests {
            parts.push(format!("${m:.4} per 1M requests"));
        }
        if let Some(t) = c.usd_per_million_output_tokens {
            parts.push(format!("${t:.4} per 1M output tokens"));
        }
        let _ = writeln!(
            out,
            "\ncost at the achieved throughput ({} instance(s) at ${}/h): {}",
            c.instances,
            c.hourly_usd,
            if parts.is_empty() {
                "nothing completed".to_owned()
            } else {
                parts.join(", ")
            }
        );
    }

    let g = &report.global;
    let lag = &g.schedule_lag_us;
    if lag.count > 0 {
        let _ = writeln!(
            out,
            "\nschedule lag (how far requests left from their intended time): p50 {}, p99 {}, max {}",
            micros(lag.p50),
            micros(lag.p99),
            micros(lag.max)
        );
    }
    if g.errors.total > 0 || g.interrupted > 0 {
        let e = &g.errors;
        let _ = writeln!(
            out,
            "\nerrors: {} connect, {} tls, {} timeout, {} 4xx, {} 5xx, {} other; {} interrupted (in flight or overdue when the run ended)",
            e.connect, e.tls, e.timeout, e.status_4xx, e.status_5xx, e.other, g.interrupted
        );
    }
    if !g.grpc_codes.is_empty() {
        let codes: Vec<String> = g
            .grpc_codes
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        let _ = writeln!(out, "\ngRPC status codes: {}", codes.join(", "));
    }
    out
}

const COLUMNS: [&str; 9] = [
    "requests",
    "errors",
    "rps (achieved / target)",
    "p50",
    "p90",
    "p95",
    "p99",
    "p99.9",
    "max",
];

fn header(first: &str, second: &str) -> Vec<String> {
    [first, second]
        .into_iter()
        .chain(COLUMNS)
        .map(str::to_owned)
        .collect()
}

/// Columns padded to their widest cell; names and the rps column left
/// aligned, numbers right aligned. With `total_row`, a rule above the last.
fn write_table(out: &mut String, rows: &[Vec<String>], total_row: bool) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 || c == 4 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        if total_row && i == rows.len() - 1 {
            let _ = writeln!(out, "{}", "-".repeat(line.trim_end().len()));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn row(name: &str, second: String, s: &ScopeSummary) -> Vec<String> {
    let l = &s.latency_us;
    let rps = match s.target_rps {
        Some(t) => format!("{:.1} / {:.1}", s.achieved_rps, t),
        None => format!("{:.1}", s.achieved_rps),
    };
    vec![
        name.to_owned(),
        second,
        s.requests.to_string(),
        s.errors.total.to_string(),
        rps,
        micros(l.p50),
        micros(l.p90),
        micros(l.p95),
        micros(l.p99),
        micros(l.p99_9),
        micros(l.max),
    ]
}

/// A latency in µs, shown in the unit that keeps it readable.
pub fn micros(us: u64) -> String {
    match us {
        0 => "-".to_owned(),
        1..=999 => format!("{us}µs"),
        1_000..=999_999 => format!("{:.2}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

fn trim_float(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// A scope's phase figures as the table and the HTML page show them: new
/// connections per second, requests per connection, then p50 / p99 of DNS,
/// connect, TLS, wait and transfer (`none` where nothing was measured).
pub(crate) fn phase_cells(p: &super::model::PhaseSummary, none: &str) -> [String; 7] {
    let pair = |l: &super::model::LatencySummary| {
        if l.count == 0 {
            none.to_owned()
        } else {
            format!("{} / {}", micros(l.p50), micros(l.p99))
        }
    };
    [
        format!("{:.1}", p.new_connections_per_second),
        p.requests_per_connection
            .map_or_else(|| none.to_owned(), |r| format!("{r:.1}")),
        pair(&p.dns_us),
        pair(&p.connect_us),
        pair(&p.tls_us),
        pair(&p.wait_us),
        pair(&p.transfer_us),
    ]
}

/// Request phase timings per region (p50 / p99 each), connection reuse and
/// the addresses the connections went to.
fn write_phases(out: &mut String, report: &RunReport) {
    let _ = writeln!(
        out,
        "\nrequest phases (p50 / p99; connect and TLS per new connection, DNS per lookup):"
    );
    let mut rows: Vec<Vec<String>> = vec![
        [
            "region",
            "new conn/s",
            "req/conn",
            "DNS",
            "connect",
            "TLS",
            "wait (TTFB)",
            "transfer",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let phase_row = |name: &str, p: &super::model::PhaseSummary| {
        let mut row = vec![name.to_owned()];
        row.extend(phase_cells(p, "-"));
        row
    };
    for region in &report.regions {
        if let Some(p) = &region.summary.phases {
            rows.push(phase_row(&region.name, p));
        }
    }
    if let Some(p) = &report.global.phases {
        rows.push(phase_row("global", p));
    }
    write_table(out, &rows, true);
    for region in &report.regions {
        let Some(p) = &region.summary.phases else {
            continue;
        };
        if p.addresses.is_empty() {
            continue;
        }
        let shown: Vec<String> = p
            .addresses
            .iter()
            .take(4)
            .map(|a| format!("{} ({})", a.address, a.connections))
            .collect();
        let more = p.addresses.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {} connected to {}{more}",
            region.name,
            shown.join(", ")
        );
    }
}

/// The cross-region matrix, compactly: a row per agent region, a column per
/// endpoint, each cell `p50 / p99 (errors)`.
fn write_matrix(out: &mut String, report: &RunReport) {
    let mut endpoints: Vec<&str> = Vec::new();
    for c in &report.matrix {
        if !endpoints.contains(&c.endpoint.as_str()) {
            endpoints.push(&c.endpoint);
        }
    }
    let _ = writeln!(
        out,
        "\ncross-region matrix (agent region → endpoint: p50 / p99, errors):"
    );
    let mut header = vec!["region → endpoint".to_owned()];
    header.extend(endpoints.iter().map(|e| (*e).to_owned()));
    let mut rows = vec![header];
    for region in &report.regions {
        let mut row = vec![region.name.clone()];
        for endpoint in &endpoints {
            let cell = report
                .matrix
                .iter()
                .find(|c| c.region == region.name && c.endpoint == *endpoint);
            row.push(match cell {
                Some(c) => format!(
                    "{} / {}, {}",
                    micros(c.summary.latency_us.p50),
                    micros(c.summary.latency_us.p99),
                    c.summary.errors.total
                ),
                None => "-".to_owned(),
            });
        }
        rows.push(row);
    }
    write_table(out, &rows, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_well() {
        assert_eq!(micros(850), "850µs");
        assert_eq!(micros(5_210), "5.21ms");
        assert_eq!(micros(1_234_567), "1.23s");
        assert_eq!(micros(0), "-");
    }
}
