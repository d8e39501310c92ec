//! Hand-made run events for the unit tests of their consumers (the live
//! view, the metrics): a two-region run of 10 s, 2 s of it warm-up.

use super::*;

pub const SECOND: i64 = 1_000_000_000;
/// When the fixture's run starts, wall clock.
pub const START: i64 = 1_000 * SECOND;

pub fn plan() -> Arc<RunPlan> {
    let stage = |label: &str, kind, start, end, level| StagePlan {
        label: label.into(),
        kind,
        start: Duration::from_secs(start),
        end: Duration::from_secs(end),
        from: level,
        to: level,
    };
    Arc::new(RunPlan {
        scenario: "checkout".into(),
        regions: ["us-east", "eu-west"]
            .map(|name| RegionPlan {
                name: name.into(),
                agents: 2,
            })
            .into(),
        duration: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        level_unit: "req/s",
        stages: vec![
            stage("warmup 100", "warmup", 0, 2, 100.0),
            stage("steady 300", "steady", 2, 10, 300.0),
        ],
    })
}

pub fn start() -> Arc<RunStart> {
    Arc::new(RunStart {
        run_id: "run-1".into(),
        plan: plan(),
        start_unix_nanos: START,
        run: 1,
        runs: 1,
        agents: vec![],
    })
}

/// One scope's interval: `requests` completed, `timeouts` of them failed.
pub fn figures(requests: u64, timeouts: u64, p50_us: u64, p99_us: u64) -> ScopeFigures {
    ScopeFigures {
        new_connections: 0,
        status_codes: BTreeMap::from([("200".to_owned(), requests - timeouts)]),
        grpc_codes: BTreeMap::new(),
        requests,
        successes: requests - timeouts,
        errors: ErrorCounts {
            total: timeouts,
            timeout: timeouts,
            ..ErrorCounts::default()
        },
        rps: requests as f64,
        latency: LatencySummary {
            count: requests - timeouts,
            p50: p50_us,
            p90: p50_us,
            p95: p99_us,
            p99: p99_us,
            p99_9: p99_us,
            max: p99_us,
            ..LatencySummary::default()
        },
    }
}

/// Interval `index` (one second) of the two regions; the global figures
/// add their counts, and take p50 30 ms and the larger p99.
pub fn interval(index: u32, warmup: bool, us: ScopeFigures, eu: ScopeFigures) -> RunEvent {
    let mut global = us.clone();
    global.requests += eu.requests;
    for (code, n) in &eu.status_codes {
        *global.status_codes.entry(code.clone()).or_default() += n;
    }
    global.successes += eu.successes;
    global.errors.total += eu.errors.total;
    global.errors.timeout += eu.errors.timeout;
    global.rps += eu.rps;
    global.latency.p50 = 30_000;
    global.latency.p99 = us.latency.p99.max(eu.latency.p99);
    RunEvent::IntervalClosed(Arc::new(IntervalSnapshot {
        run_id: "run-1".into(),
        index,
        start_s: f64::from(index),
        end_s: f64::from(index) + 1.0,
        warmup,
        global,
        regions: BTreeMap::from([("us-east".into(), us), ("eu-west".into(), eu)]),
        global_latency_histogram: Vec::new(),
    }))
}

pub fn joined(agent: u128, region: &str) -> RunEvent {
    RunEvent::AgentJoined {
        agent: Uuid::from_u128(agent),
        region: region.into(),
    }
}
