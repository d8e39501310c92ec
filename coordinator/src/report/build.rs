//! Builds the [`RunReport`] from the merged state of a run.

use super::model::*;
use crate::merge::{LlmInterval, Outcomes, PhaseInterval, RunMerge, Totals};
use crate::scenario::{Arrival, Model, PhaseKind, RequestUrl, Scenario};
use base64::Engine;
use hdrhistogram::Histogram;
use stampede_proto::histogram::{
    self, Encoding, HIGHEST_MICROS, LOWEST_MICROS, SIGNIFICANT_DIGITS,
};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the run actor knows about each agent besides its figures.
#[derive(Debug, Clone)]
pub struct AgentMeta {
    pub zone: String,
    pub hostname: String,
    pub state: String,
    /// Its clock against the coordinator's (from the clock exchange).
    pub clock: Option<crate::clock::ClockSample>,
    /// When it was lost, seconds from the run's start.
    pub lost_at_s: Option<f64>,
}

pub struct ReportInput<'a> {
    pub run_id: &'a str,
    pub scenario: &'a Scenario,
    pub merge: &'a RunMerge,
    pub agents: &'a BTreeMap<uuid::Uuid, AgentMeta>,
    pub start_unix_nanos: i64,
    pub notes: Vec<String>,
    pub faults: Vec<Fault>,
    /// A lost agent stopped the run (`on_agent_loss: fail`).
    pub failed: bool,
    pub series: Option<SeriesInfo>,
}

pub fn build(input: ReportInput<'_>) -> RunReport {
    let ReportInput {
        run_id,
        scenario,
        merge,
        agents,
        start_unix_nanos,
        notes,
        faults,
        failed,
        series,
    } = input;
    let end_unix_nanos = merge
        .intervals()
        .iter()
        .map(|i| i.end_unix_nanos)
        .max()
        .unwrap_or(start_unix_nanos);
    // Rates are per second of the nominal duration, or of the time the run
    // actually lasted when it was cut short; the warm-up counts in neither.
    // (The last interval of a complete run ends when its last response
    // arrives, a little before or after the nominal end: only a partial
    // run is measured by its elapsed time.)
    let elapsed = if notes.is_empty() {
        f64::INFINITY
    } else {
        (end_unix_nanos - start_unix_nanos).max(0) as f64 / 1e9
    };
    let warmup = scenario.load.warmup().as_secs_f64();
    let duration = (scenario.load.duration.as_secs_f64().min(elapsed) - warmup).max(0.0);
    let fractions = crate::plan::region_fractions(scenario);
    let total_rate = match scenario.load.model {
        Model::Open { rate, .. } => Some(rate),
        Model::Closed => None,
    };

    let phases = merge.phases();
    let mut regions = Vec::new();
    for spec in &scenario.regions {
        let totals = merge.regions.get(&spec.name).cloned().unwrap_or_default();
        let target = total_rate.map(|r| r * fractions.get(&spec.name).copied().unwrap_or(0.0));
        regions.push(RegionReport {
            name: spec.name.clone(),
            agents: merge
                .agents
                .values()
                .filter(|a| a.region == spec.name)
                .count() as u32,
            summary: {
                let mut summary = scope_summary(&totals, target, duration);
                if scenario.llm.is_some() {
                    let llm = merge.llm.get(&spec.name).cloned().unwrap_or_default();
                    summary.llm = Some(llm_summary(&llm, summary.requests, duration));
                }
                if let Some(phases) = phases.get(&spec.name) {
                    summary.phases = Some(phase_summary(phases, summary.requests, duration));
                }
                summary
            },
        });
    }

    let mut agent_reports = Vec::new();
    for (id, progress) in &merge.agents {
        let meta = agents.get(id);
        let in_region = merge
            .agents
            .values()
            .filter(|a| a.region == progress.region)
            .count()
            .max(1);
        let target = total_rate.map(|r| {
            r * fractions.get(&progress.region).copied().unwrap_or(0.0) / in_region as f64
        });
        agent_reports.push(AgentReport {
            id: id.to_string(),
            region: progress.region.clone(),
            zone: meta.map(|m| m.zone.clone()).unwrap_or_default(),
            hostname: meta.map(|m| m.hostname.clone()).unwrap_or_default(),
            state: meta.map_or_else(|| "unknown".to_owned(), |m| m.state.clone()),
            lost_at_s: meta.and_then(|m| m.lost_at_s),
            intervals: progress.intervals,
            clock_offset_ms: meta
                .and_then(|m| m.clock)
                .map(|c| c.offset_nanos as f64 / 1e6),
            clock_rtt_ms: meta.and_then(|m| m.clock).map(|c| c.rtt_nanos as f64 / 1e6),
            cpu_seconds: progress.cpu_micros as f64 / 1e6,
            peak_cpu_share: progress.peak_cpu_share,
            saturated: false,
            summary: scope_summary(&progress.totals.to_totals(), target, duration),
        });
    }

    let intervals = merge
        .intervals()
        .iter()
        .map(|closed| {
            let seconds = (closed.end_unix_nanos - closed.start_unix_nanos).max(1) as f64 / 1e9;
            IntervalReport {
                index: closed.index,
                start_s: (closed.start_unix_nanos - start_unix_nanos) as f64 / 1e9,
                end_s: (closed.end_unix_nanos - start_unix_nanos) as f64 / 1e9,
                warmup: merge.is_warmup(closed.index),
                global: interval_figures(&closed.global.unseal(), seconds),
                regions: closed
                    .regions
                    .iter()
                    .map(|(name, sealed)| {
                        (name.clone(), interval_figures(&sealed.unseal(), seconds))
                    })
                    .collect(),
            }
        })
        .collect();

    let status = if failed {
        RunStatus::Failed
    } else if notes.is_empty() {
        RunStatus::Complete
    } else {
        RunStatus::Partial
    };
    let mut report = RunReport {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "stampede".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        run_id: run_id.to_owned(),
        status,
        notes,
        faults,
        scenario: echo(scenario),
        started_at: rfc3339(start_unix_nanos),
        ended_at: rfc3339(end_unix_nanos),
        histogram_format: HistogramFormat {
            unit: "us".into(),
            encoding: "hdr-v2-deflate-base64".into(),
            lowest_discernible_value: LOWEST_MICROS,
            highest_trackable_value: HIGHEST_MICROS,
            significant_digits: SIGNIFICANT_DIGITS,
        },
        global: {
            let mut global = scope_summary(&merge.global(), total_rate, duration);
            if scenario.llm.is_some() {
                let mut all = LlmInterval::default();
                for l in merge.llm.values() {
                    all.add(l);
                }
                global.llm = Some(llm_summary(&all, global.requests, duration));
            }
            if !phases.is_empty() {
                let mut all = PhaseInterval::default();
                for p in phases.values() {
                    all.add(p);
                }
                global.phases = Some(phase_summary(&all, global.requests, duration));
            }
            global
        },
        regions,
        agents: agent_reports,
        intervals,
        stages: if scenario.load.staged {
            stage_reports(scenario, merge, elapsed)
        } else {
            Vec::new()
        },
        thresholds: Vec::new(),
        requests: request_reports(scenario, merge, total_rate, duration),
        matrix: matrix(scenario, merge, duration),
        series,
        start_skew_bound_ms: {
            let samples: Vec<_> = agents.values().filter_map(|m| m.clock).collect();
            (!samples.is_empty()).then(|| crate::clock::skew_bound_ms(samples))
        },
        warnings: Vec::new(),
        cost: None,
    };
    report.thresholds = super::thresholds::evaluate(&scenario.thresholds, &report);
    report.warnings = generator_health(&mut report.agents);
    report.cost = scenario.cost.map(|c| cost_summary(c, &report.global));
    report
}

/// The instances' price per second, spread over what they served.
pub fn cost_summary(cost: crate::scenario::Cost, global: &ScopeSummary) -> CostSummary {
    let per_second = cost.hourly_usd * f64::from(cost.instances) / 3600.0;
    let per = |rate: f64| (rate > 0.0).then(|| per_second / rate);
    let per_request = per(global.achieved_rps);
    CostSummary {
        hourly_usd: cost.hourly_usd,
        instances: cost.instances,
        usd_per_request: per_request,
        usd_per_million_requests: per_request.map(|p| p * 1e6),
        usd_per_million_output_tokens: global
            .llm
            .as_ref()
            .and_then(|l| per(l.output_tokens_per_second))
            .map(|p| p * 1e6),
    }
}

/// An agent at or above this share of its workers' CPU is saturated.
const SATURATED_CPU_SHARE: f64 = 0.9;
/// An agent whose requests left this late (p99) against their intended
/// time could not keep up with its schedule.
const SATURATED_LAG_P99_US: u64 = 10_000;

/// Marks saturated agents and says so, one warning each.
fn generator_health(agents: &mut [AgentReport]) -> Vec<String> {
    let mut warnings = Vec::new();
    for a in agents.iter_mut() {
        let cpu = a.peak_cpu_share >= SATURATED_CPU_SHARE;
        let lag = a.summary.schedule_lag_us.p99 >= SATURATED_LAG_P99_US;
        if cpu || lag {
            a.saturated = true;
            let mut why = Vec::new();
            if cpu {
                why.push(format!(
                    "its busiest interval used {:.0}% of its worker threads' CPU",
                    a.peak_cpu_share * 100.0
                ));
            }
            if lag {
                why.push(format!(
                    "its requests left up to {} late (schedule lag p99)",
                    super::table::micros(a.summary.schedule_lag_us.p99)
                ));
            }
            warnings.push(format!(
                "agent {} ({}) was saturated: {}. Its figures describe the load generator, not the target; \
                 add agents or threads, or lower the load",
                a.id,
                a.region,
                why.join(" and ")
            ));
        }
    }
    warnings
}

/// Each request of a mix: its figures globally (the regions' sum) and per
/// region. Empty when the scenario has no `requests:`.
fn request_reports(
    scenario: &Scenario,
    merge: &RunMerge,
    total_rate: Option<f64>,
    duration: f64,
) -> Vec<RequestReport> {
    let weights: f64 = scenario.requests.iter().map(|r| r.weight).sum();
    let fractions = crate::plan::region_fractions(scenario);
    let mix = scenario.effective_requests().len();
    let endpoints = scenario
        .topology
        .as_ref()
        .map_or(1, |t| t.endpoints.len().max(1));
    scenario
        .requests
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let share = r.weight / weights;
            let mut global = Totals::default();
            let mut regions = BTreeMap::new();
            for region in &scenario.regions {
                // With endpoints, the request is recorded once per endpoint.
                let mut totals = Totals::default();
                for e in 0..endpoints {
                    if let Some(t) = merge
                        .requests
                        .get(&(region.name.clone(), (e * mix + index) as u32))
                    {
                        totals.add(&t.to_totals());
                    }
                }
                global.add(&totals);
                let fraction = fractions.get(&region.name).copied().unwrap_or(0.0);
                let target = total_rate.map(|rate| rate * fraction * share);
                regions.insert(
                    region.name.clone(),
                    scope_summary(&totals, target, duration),
                );
            }
            RequestReport {
                name: r.name.clone(),
                method: r.method.clone(),
                url: match &r.url {
                    RequestUrl::Base => String::new(),
                    RequestUrl::Absolute(u) | RequestUrl::Relative(u) | RequestUrl::Full(u) => {
                        u.clone()
                    }
                },
                share,
                global: scope_summary(&global, total_rate.map(|rate| rate * share), duration),
                regions,
            }
        })
        .collect()
}

/// The cross-region matrix: per agent region and endpoint, the sum of that
/// endpoint's requests (recorded from `endpoint × mix`). Cells with no
/// request are left out (home routing sends each region to one endpoint).
fn matrix(scenario: &Scenario, merge: &RunMerge, duration: f64) -> Vec<MatrixCell> {
    let Some(topology) = &scenario.topology else {
        return Vec::new();
    };
    let mix = scenario.effective_requests().len();
    let mut cells = Vec::new();
    for region in &scenario.regions {
        for (e, endpoint) in topology.endpoints.iter().enumerate() {
            let mut totals = Totals::default();
            if mix * topology.endpoints.len() == 1 {
                // One request slot: agents keep no per-request figures, and
                // the region's totals are the one cell.
                if let Some(t) = merge.regions.get(&region.name) {
                    totals.add(t);
                }
            }
            for r in 0..mix {
                if let Some(t) = merge
                    .requests
                    .get(&(region.name.clone(), (e * mix + r) as u32))
                {
                    totals.add(&t.to_totals());
                }
            }
            if totals.outcomes.completed() + totals.outcomes.interrupted == 0 {
                continue;
            }
            cells.push(MatrixCell {
                region: region.name.clone(),
                endpoint: endpoint.name.clone(),
                summary: scope_summary(&totals, None, duration),
            });
        }
    }
    cells
}

/// Each phase's figures: the sum of the intervals it spans (phases start
/// and end on interval boundaries, so nothing is split).
fn stage_reports(scenario: &Scenario, merge: &RunMerge, elapsed: f64) -> Vec<StageReport> {
    let fractions = crate::plan::region_fractions(scenario);
    let interval = scenario.load.interval.as_nanos().max(1);
    let open = matches!(scenario.load.model, Model::Open { .. });
    let mut out = Vec::with_capacity(scenario.load.phases.len());
    let mut start = Duration::ZERO;
    for phase in &scenario.load.phases {
        let end = start + phase.duration;
        let (first, last) = (start.as_nanos() / interval, end.as_nanos() / interval);
        let mut global = Totals::default();
        let mut regions: BTreeMap<String, Totals> = scenario
            .regions
            .iter()
            .map(|r| (r.name.clone(), Totals::default()))
            .collect();
        for closed in merge.intervals() {
            let index = u128::from(closed.index);
            if index < first || index >= last {
                continue;
            }
            global.add(&closed.global.unseal());
            for (name, sealed) in &closed.regions {
                regions
                    .entry(name.clone())
                    .or_default()
                    .add(&sealed.unseal());
            }
        }
        // A phase cut short by a stopped run counts the time it had.
        let seconds = (end.as_secs_f64().min(elapsed) - start.as_secs_f64()).max(0.0);
        let target = |fraction: f64| open.then(|| phase.mean() * fraction);
        out.push(StageReport {
            name: phase.label(),
            kind: phase.kind.as_str().into(),
            stage: phase.stage as u32,
            start_s: start.as_secs_f64(),
            end_s: end.as_secs_f64(),
            level_from: phase.from,
            level_to: phase.to,
            warmup: phase.kind == PhaseKind::Warmup,
            global: scope_summary(&global, target(1.0), seconds),
            regions: regions
                .iter()
                .map(|(name, totals)| {
                    let fraction = fractions.get(name).copied().unwrap_or(0.0);
                    (
                        name.clone(),
                        scope_summary(totals, target(fraction), seconds),
                    )
                })
                .collect(),
        });
        start = end;
    }
    out
}

fn echo(s: &Scenario) -> ScenarioEcho {
    ScenarioEcho {
        name: s.name.clone(),
        grpc_method: s.grpc.as_ref().map(|g| g.path.clone()),
        model: match s.load.model {
            Model::Open { .. } => "open",
            Model::Closed => "closed",
        }
        .into(),
        rate: match s.load.model {
            Model::Open { rate, .. } => Some(rate),
            Model::Closed => None,
        },
        connections: s.load.connections,
        duration_s: s.load.duration.as_secs_f64(),
        interval_s: s.load.interval.as_secs_f64(),
        // gRPC calls are HTTP/2 POSTs.
        method: if s.grpc.is_some() {
            "POST".to_owned()
        } else {
            s.target.method.clone()
        },
        url: s.target.url.to_string(),
        arrival: match s.load.model {
            Model::Open {
                arrival: Arrival::Constant,
                ..
            } => Some("constant".into()),
            Model::Open {
                arrival: Arrival::Poisson { .. },
                ..
            } => Some("poisson".into()),
            Model::Closed => None,
        },
        seed: match s.load.model {
            Model::Open {
                arrival: Arrival::Poisson { seed },
                ..
            } => Some(seed),
            _ => None,
        },
        warmup_s: s.load.warmup().as_secs_f64(),
        protocol: match s.target.transport.protocol {
            stampede_agent::plan::Protocol::Http1 => "http1",
            stampede_agent::plan::Protocol::Http2 => "http2",
        }
        .into(),
        streams_per_connection: s.target.transport.streams,
        keep_alive: !s.target.transport.new_connection_per_request,
        dns_refresh_s: s.target.transport.dns_refresh.map(|d| d.as_secs_f64()),
        dns_policy: Some(s.target.transport.dns_policy.name().to_owned()),
        tls: s.target.transport.tls.as_ref().map(|t| TlsEcho {
            custom_ca: !t.ca_pem.is_empty(),
            client_certificate: !t.cert_pem.is_empty(),
            server_name: t.server_name.clone(),
            insecure: t.insecure,
        }),
        data_file: s.data.as_ref().map(|d| d.file.clone()),
        data_order: s.data.as_ref().map(|d| {
            match d.order {
                stampede_agent::plan::DataOrder::Sequential => "sequential",
                stampede_agent::plan::DataOrder::Random => "random",
                stampede_agent::plan::DataOrder::Once => "once",
            }
            .to_owned()
        }),
        data_rows: s.data.as_ref().map(|d| d.rows.len() as u64),
        region_urls: s
            .target
            .region_urls
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    }
}

pub fn scope_summary(t: &Totals, target_rps: Option<f64>, duration_s: f64) -> ScopeSummary {
    let o = &t.outcomes;
    ScopeSummary {
        requests: o.completed(),
        successes: o.success,
        errors: error_counts(o),
        interrupted: o.interrupted,
        status_codes: named_status_codes(t),
        grpc_codes: named_grpc_codes(t),
        bytes_received: t.bytes_received,
        bytes_sent: t.bytes_sent,
        target_rps,
        achieved_rps: if duration_s > 0.0 {
            o.completed() as f64 / duration_s
        } else {
            0.0
        },
        latency_us: latency_summary(&t.latency),
        error_latency_us: latency_summary(&t.errors),
        schedule_lag_us: latency_summary(&t.schedule_lag),
        latency_histogram: encode_base64(&t.latency),
        error_histogram: encode_base64(&t.errors),
        schedule_lag_histogram: encode_base64(&t.schedule_lag),
        llm: None,
        phases: None,
    }
}

/// A scope's responses by HTTP status code, keyed as the report writes them ("200").
pub fn named_status_codes(t: &Totals) -> BTreeMap<String, u64> {
    t.status_codes
        .iter()
        .map(|(c, n)| (c.to_string(), *n))
        .collect()
}

/// A scope's gRPC calls by status, keyed by the status's name ("UNAVAILABLE").
pub fn named_grpc_codes(t: &Totals) -> BTreeMap<String, u64> {
    t.grpc_codes
        .iter()
        .map(|(c, n)| (grpc_code_name(*c).to_owned(), *n))
        .collect()
}

/// The canonical name of a gRPC status code, as in the gRPC spec.
pub fn grpc_code_name(code: u8) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(usize::from(code)).copied().unwrap_or("UNKNOWN")
}

/// A scope's request phase timings from its merged phase histograms.
pub fn phase_summary(p: &PhaseInterval, completed: u64, duration_s: f64) -> PhaseSummary {
    let h = |s: &stampede_proto::histogram::SparseHistogram| s.to_histogram();
    let (dns, connect, tls, wait, transfer) = (
        h(&p.dns),
        h(&p.connect),
        h(&p.tls),
        h(&p.wait),
        h(&p.transfer),
    );
    let mut addresses: Vec<AddressUse> = p
        .addresses
        .iter()
        .map(|(address, n)| AddressUse {
            address: address.clone(),
            connections: *n,
        })
        .collect();
    addresses.sort_by_key(|a| std::cmp::Reverse(a.connections));
    PhaseSummary {
        dns_us: latency_summary(&dns),
        connect_us: latency_summary(&connect),
        tls_us: latency_summary(&tls),
        wait_us: latency_summary(&wait),
        transfer_us: latency_summary(&transfer),
        new_connections: p.new_connections,
        new_connections_per_second: if duration_s > 0.0 {
            p.new_connections as f64 / duration_s
        } else {
            0.0
        },
        requests_per_connection: (p.new_connections > 0)
            .then(|| completed as f64 / p.new_connections as f64),
        addresses,
        dns_histogram: encode_base64(&dns),
        connect_histogram: encode_base64(&connect),
        tls_histogram: encode_base64(&tls),
        wait_histogram: encode_base64(&wait),
        transfer_histogram: encode_base64(&transfer),
    }
}

/// A scope's model-serving figures from its merged LLM histograms.
pub fn llm_summary(l: &LlmInterval, completed: u64, duration_s: f64) -> LlmSummary {
    let c = &l.counts;
    let h = |s: &stampede_proto::histogram::SparseHistogram| s.to_histogram();
    let (ttft, itl, itl_pt, tpot, tps) = (
        h(&l.ttft),
        h(&l.itl),
        h(&l.itl_per_token),
        h(&l.tpot),
        h(&l.tokens_per_second),
    );
    let per_second = |n: u64| {
        if duration_s > 0.0 {
            n as f64 / duration_s
        } else {
            0.0
        }
    };
    LlmSummary {
        ttft_us: latency_summary(&ttft),
        itl_us: latency_summary(&itl),
        itl_per_token_us: latency_summary(&itl_pt),
        tpot_us: latency_summary(&tpot),
        request_tokens_per_second: latency_summary(&tps),
        output_tokens: c.output_tokens,
        input_tokens: c.input_tokens,
        output_tokens_per_second: per_second(c.output_tokens),
        token_count_source: match (c.usage_counted > 0, c.chunk_counted > 0) {
            (true, false) => "usage",
            (false, true) => "chunks",
            (true, true) => "mixed",
            (false, false) => "none",
        }
        .into(),
        usage_counted: c.usage_counted,
        chunk_counted: c.chunk_counted,
        uncounted: c.uncounted,
        streamed: c.streamed,
        good: c.good,
        goodput_rps: per_second(c.good),
        goodput_ratio: if completed > 0 {
            c.good as f64 / completed as f64
        } else {
            0.0
        },
        malformed: c.malformed,
        truncated: c.truncated,
        ttft_histogram: encode_base64(&ttft),
        itl_histogram: encode_base64(&itl),
        itl_per_token_histogram: encode_base64(&itl_pt),
        tpot_histogram: encode_base64(&tpot),
        request_tokens_per_second_histogram: encode_base64(&tps),
    }
}

/// Failed requests by class.
pub fn error_counts(o: &Outcomes) -> ErrorCounts {
    ErrorCounts {
        total: o.failed(),
        connect: o.connect_error,
        tls: o.tls_error,
        timeout: o.timeout,
        status_4xx: o.status_4xx,
        status_5xx: o.status_5xx,
        other: o.other_error,
    }
}

fn interval_figures(t: &Totals, seconds: f64) -> IntervalFigures {
    IntervalFigures {
        requests: t.outcomes.completed(),
        successes: t.outcomes.success,
        errors: t.outcomes.failed(),
        rps: t.outcomes.completed() as f64 / seconds,
        new_connections_per_second: t.new_connections as f64 / seconds,
        latency_us: latency_summary(&t.latency),
        latency_histogram: encode_base64(&t.latency),
        error_histogram: encode_base64(&t.errors),
    }
}

pub fn latency_summary(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        min: h.min(),
        mean: h.mean(),
        stdev: h.stdev(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p95: h.value_at_quantile(0.95),
        p99: h.value_at_quantile(0.99),
        p99_9: h.value_at_quantile(0.999),
        max: h.max(),
    }
}

/// HdrHistogram compressed V2, base64 (standard alphabet, padded): the
/// `.hlog` form other HdrHistogram libraries read as it is.
pub fn encode_base64(h: &Histogram<u64>) -> String {
    let bytes = histogram::encode(h, Encoding::Deflate).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[derive(Debug, thiserror::Error)]
pub enum HistogramFieldError {
    #[error("not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error(transparent)]
    Codec(#[from] histogram::HistogramCodecError),
}

pub fn decode_base64(text: &str) -> Result<Histogram<u64>, HistogramFieldError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    Ok(histogram::decode(&bytes)?)
}

fn rfc3339(unix_nanos: i64) -> String {
    let t = if unix_nanos >= 0 {
        UNIX_EPOCH + Duration::from_nanos(unix_nanos as u64)
    } else {
        UNIX_EPOCH
    };
    humantime::format_rfc3339_millis(t).to_string()
}

/// The current wall clock in unix nanoseconds.
pub fn unix_nanos_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
