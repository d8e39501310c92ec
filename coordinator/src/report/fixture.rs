//! Hand-built reports for the unit tests of the report renderers: regions
//! with known latencies per one-second interval, assembled the way
//! `build.rs` assembles a real run (histograms added, never averaged).

use super::build::{encode_base64, latency_summary};
use super::model::*;
use hdrhistogram::Histogram;
use stampede_proto::histogram::{
    HIGHEST_MICROS, LOWEST_MICROS, RecordClamped, SIGNIFICANT_DIGITS, new_latency_histogram,
};
use std::collections::BTreeMap;

/// One interval of one region: the latencies of its successes, and how
/// many requests failed.
pub struct Slice {
    pub latencies_us: Vec<u64>,
    pub errors: u64,
}

pub fn slice(latencies_us: impl IntoIterator<Item = u64>, errors: u64) -> Slice {
    Slice {
        latencies_us: latencies_us.into_iter().collect(),
        errors,
    }
}

fn histogram(values: &[u64]) -> Histogram<u64> {
    let mut h = new_latency_histogram();
    for v in values {
        h.record_clamped(*v);
    }
    h
}

fn summary(latency: &Histogram<u64>, errors: u64, seconds: f64) -> ScopeSummary {
    let empty = encode_base64(&new_latency_histogram());
    ScopeSummary {
        requests: latency.len() + errors,
        successes: latency.len(),
        errors: ErrorCounts {
            total: errors,
            status_5xx: errors,
            ..ErrorCounts::default()
        },
        interrupted: 0,
        status_codes: BTreeMap::new(),
        grpc_codes: BTreeMap::new(),
        bytes_received: 0,
        bytes_sent: 0,
        target_rps: None,
        achieved_rps: (latency.len() + errors) as f64 / seconds,
        latency_us: latency_summary(latency),
        error_latency_us: LatencySummary::default(),
        schedule_lag_us: LatencySummary::default(),
        latency_histogram: encode_base64(latency),
        error_histogram: empty.clone(),
        schedule_lag_histogram: empty,
        llm: None,
        phases: None,
    }
}

fn figures(latency: &Histogram<u64>, errors: u64) -> IntervalFigures {
    IntervalFigures {
        new_connections_per_second: 0.0,
        requests: latency.len() + errors,
        successes: latency.len(),
        errors,
        rps: (latency.len() + errors) as f64,
        latency_us: latency_summary(latency),
        latency_histogram: encode_base64(latency),
        error_histogram: encode_base64(&new_latency_histogram()),
    }
}

/// A complete closed-model run: every region has one agent and the same
/// number of one-second intervals (`regions[i].1.len()`, the longest wins).
pub fn report(regions: &[(&str, Vec<Slice>)]) -> RunReport {
    let intervals = regions.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    let seconds = intervals.max(1) as f64;
    let mut global = new_latency_histogram();
    let mut global_errors = 0;
    let mut region_reports = Vec::new();
    let mut agents = Vec::new();
    let mut interval_reports: Vec<IntervalReport> = (0..intervals)
        .map(|i| IntervalReport {
            index: i as u32,
            start_s: i as f64,
            end_s: i as f64 + 1.0,
            warmup: false,
            global: figures(&new_latency_histogram(), 0),
            regions: BTreeMap::new(),
        })
        .collect();
    let mut interval_totals = vec![(new_latency_histogram(), 0u64); intervals];
    for (n, (name, slices)) in regions.iter().enumerate() {
        let mut total = new_latency_histogram();
        let mut errors = 0;
        for (i, s) in slices.iter().enumerate() {
            let h = histogram(&s.latencies_us);
            interval_reports[i]
                .regions
                .insert((*name).to_owned(), figures(&h, s.errors));
            let _ = interval_totals[i].0.add(&h);
            interval_totals[i].1 += s.errors;
            let _ = total.add(&h);
            errors += s.errors;
        }
        let _ = global.add(&total);
        global_errors += errors;
        let summary = summary(&total, errors, seconds);
        region_reports.push(RegionReport {
            name: (*name).to_owned(),
            agents: 1,
            summary: summary.clone(),
        });
        agents.push(AgentReport {
            id: format!("00000000-0000-4000-8000-{n:012}"),
            region: (*name).to_owned(),
            zone: String::new(),
            hostname: format!("host-{n}"),
            state: "finished".into(),
            lost_at_s: None,
            intervals: slices.len() as u32,
            clock_offset_ms: None,
            clock_rtt_ms: None,
            cpu_seconds: 0.0,
            peak_cpu_share: 0.0,
            saturated: false,
            summary,
        });
    }
    for (report, (h, errors)) in interval_reports.iter_mut().zip(&interval_totals) {
        report.global = figures(h, *errors);
    }
    RunReport {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "stampede".into(),
            version: "0.1.0".into(),
        },
        run_id: "11111111-2222-4333-8444-555555555555".into(),
        status: RunStatus::Complete,
        notes: vec![],
        faults: vec![],
        scenario: ScenarioEcho {
            name: "fixture".into(),
            model: "closed".into(),
            rate: None,
            connections: 4,
            duration_s: seconds,
            interval_s: 1.0,
            method: "GET".into(),
            url: "http://127.0.0.1:9/".into(),
            region_urls: BTreeMap::new(),
            arrival: None,
            seed: None,
            warmup_s: 0.0,
            protocol: "http1".into(),
            streams_per_connection: 1,
            keep_alive: true,
            dns_refresh_s: Some(300.0),
            dns_policy: Some("prefer_ipv4".to_owned()),
            tls: None,
            data_file: None,
            data_order: None,
            data_rows: None,
            grpc_method: None,
        },
        started_at: "2026-01-02T03:04:05.000Z".into(),
        ended_at: format!("2026-01-02T03:04:{:06.3}Z", 5.0 + seconds),
        histogram_format: HistogramFormat {
            unit: "us".into(),
            encoding: "hdr-v2-deflate-base64".into(),
            lowest_discernible_value: LOWEST_MICROS,
            highest_trackable_value: HIGHEST_MICROS,
            significant_digits: SIGNIFICANT_DIGITS,
        },
        global: summary(&global, global_errors, seconds),
        regions: region_reports,
        agents,
        intervals: interval_reports,
        stages: vec![],
        thresholds: vec![],
        requests: vec![],
        matrix: vec![],
        series: None,
        start_skew_bound_ms: None,
        warnings: vec![],
        cost: None,
    }
}

/// `n` latencies spread evenly over `[low, high]` µs.
pub fn spread(low: u64, high: u64, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| low + (high - low) * i / (n.max(2) - 1))
        .collect()
}
