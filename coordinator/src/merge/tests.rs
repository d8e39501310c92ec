//! Merge correctness: whatever way samples are split across agents, regions
//! and intervals, and sent through the wire, the merged histograms equal one
//! histogram holding every sample.

use super::*;
use crate::wire;
use proptest::prelude::*;
use stampede_proto::histogram::{Encoding, encode};
use stampede_proto::v1;

const QUANTILES: [f64; 8] = [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0];

/// What an agent would send for one interval.
fn wire_report(
    agent: Uuid,
    index: u32,
    samples: &[u64],
    last: bool,
    encoding: Encoding,
) -> v1::IntervalReport {
    let mut h = new_latency_histogram();
    for &s in samples {
        h.record(s).expect("in range");
    }
    v1::IntervalReport {
        run_id: "run".into(),
        agent_id: agent.to_string(),
        index,
        start_unix_nanos: i64::from(index) * 1_000_000_000,
        end_unix_nanos: i64::from(index + 1) * 1_000_000_000,
        latency_histogram: encode(&h, encoding).expect("encodes").into(),
        // The same samples as schedule lag: it must merge just as exactly.
        schedule_lag_histogram: encode(&h, encoding).expect("encodes").into(),
        error_histogram: Default::default(),
        outcomes: Some(v1::OutcomeCounts {
            success: samples.len() as u64,
            ..Default::default()
        }),
        status_codes: [(200, samples.len() as u64)].into(),
        grpc_codes: Default::default(),
        bytes_received: 0,
        bytes_sent: 0,
        last,
        requests: Vec::new(),
        llm: None,
        cpu_micros: 0,
        worker_threads: 0,
        // The same samples as the wait phase, from one new connection.
        phases: Some(v1::PhaseFigures {
            wait_histogram: encode(&h, encoding).expect("encodes").into(),
            new_connections: 1,
            addresses: vec![v1::AddressUse {
                address: "127.0.0.1:80".into(),
                connections: 1,
            }],
            ..Default::default()
        }),
    }
}

fn assert_same_distribution(merged: &Histogram<u64>, reference: &Histogram<u64>) {
    assert_eq!(merged.len(), reference.len());
    for q in QUANTILES {
        assert_eq!(
            merged.value_at_quantile(q),
            reference.value_at_quantile(q),
            "quantile {q}"
        );
    }
    assert_eq!(merged.max(), reference.max());
    assert_eq!(merged.min(), reference.min());
    assert_eq!(merged, reference);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn merged_percentiles_equal_those_of_the_union(
        // (region, agent within region, interval, latency µs)
        samples in prop::collection::vec((0usize..3, 0usize..3, 0u32..8, 1u64..120_000_000), 1..3000),
        deflate in any::<bool>(),
    ) {
        let encoding = if deflate { Encoding::Deflate } else { Encoding::Plain };
        let regions = ["us-east", "eu-west", "ap-south"];
        let agents: Vec<(Uuid, String)> = regions
            .iter()
            .flat_map(|r| (0..3).map(move |_| (Uuid::new_v4(), r.to_string())))
            .collect();
        let mut merge = RunMerge::new(agents.clone(), 0);

        let mut reference = new_latency_histogram();
        let mut region_reference: BTreeMap<&str, Histogram<u64>> = BTreeMap::new();
        let mut interval_reference: BTreeMap<u32, Histogram<u64>> = BTreeMap::new();
        for &(r, a, i, v) in &samples {
            reference.record(v).expect("in range");
            region_reference.entry(regions[r]).or_insert_with(new_latency_histogram).record(v).expect("in range");
            interval_reference.entry(i).or_insert_with(new_latency_histogram).record(v).expect("in range");
            let _ = a;
        }

        // Every agent sends every interval 0..8 (some empty), in order.
        for (n, (agent, _)) in agents.iter().enumerate() {
            let (r, a) = (n / 3, n % 3);
            for i in 0..8u32 {
                let mine: Vec<u64> = samples.iter().filter(|s| s.0 == r && s.1 == a && s.2 == i).map(|s| s.3).collect();
                let report = wire::agent_interval(wire_report(*agent, i, &mine, i == 7, encoding)).expect("decodes");
                merge.add(report).expect("merges");
            }
        }
        prop_assert!(merge.all_done());
        merge.close_all();

        assert_same_distribution(&merge.global().latency, &reference);
        assert_same_distribution(&merge.global().schedule_lag, &reference);
        let phases = merge.phases();
        for (name, h) in &region_reference {
            assert_same_distribution(&merge.regions[*name].latency, h);
            // Phase histograms merge just as exactly, per region.
            assert_same_distribution(&phases[*name].wait.to_histogram(), h);
        }
        // One connection per agent interval: 9 agents × 8 intervals.
        prop_assert_eq!(merge.global().new_connections, 72);
        let per_address: u64 = phases.values().map(|p| p.addresses["127.0.0.1:80"]).sum();
        prop_assert_eq!(per_address, 72);
        prop_assert_eq!(merge.global().outcomes.success, samples.len() as u64);
        prop_assert_eq!(merge.global().status_codes.get(&200).copied(), Some(samples.len() as u64));

        let closed = merge.intervals();
        prop_assert_eq!(closed.len(), 8);
        let mut sum_of_intervals = new_latency_histogram();
        for c in closed {
            let totals = c.global.unseal();
            if let Some(h) = interval_reference.get(&c.index) {
                assert_same_distribution(&totals.latency, h);
            } else {
                prop_assert_eq!(totals.latency.len(), 0);
            }
            sum_of_intervals.add(&totals.latency).expect("same shape");
        }
        assert_same_distribution(&sum_of_intervals, &reference);
        // Per-agent cumulative totals add up to the global one.
        let agent_sum: u64 = merge.agents.values().map(|a| a.totals.latency.len()).sum();
        prop_assert_eq!(agent_sum, reference.len());
    }
}

#[test]
fn intervals_close_only_when_every_running_agent_passed_them() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut merge = RunMerge::new([(a, "x".to_owned()), (b, "y".to_owned())], 0);
    let add = |m: &mut RunMerge, id, i, last| {
        m.add(
            wire::agent_interval(wire_report(id, i, &[100, 200], last, Encoding::Deflate))
                .expect("decodes"),
        )
    };
    add(&mut merge, a, 0, false).expect("ok");
    add(&mut merge, a, 1, false).expect("ok");
    assert!(
        merge.intervals().is_empty(),
        "b has not reported interval 0"
    );
    add(&mut merge, b, 0, false).expect("ok");
    assert_eq!(merge.intervals().len(), 1);
    // b is lost: interval 1 no longer waits for it.
    merge.agent_done(b);
    assert_eq!(merge.intervals().len(), 2);
    assert_eq!(
        merge.intervals()[1]
            .regions
            .get("y")
            .map(|t| t.unseal().outcomes.success),
        None
    );
    assert!(matches!(
        add(&mut merge, a, 1, false),
        Err(MergeError::OutOfOrder { .. })
    ));
    assert!(matches!(
        add(&mut merge, Uuid::new_v4(), 2, false),
        Err(MergeError::UnknownAgent(_))
    ));
}

#[test]
fn warmup_intervals_are_kept_apart_from_every_total() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    // Two warm-up intervals, then two measured ones.
    let mut merge = RunMerge::new([(a, "x".to_owned()), (b, "y".to_owned())], 2);
    for index in 0..4 {
        for id in [a, b] {
            // Warm-up samples are slow (50 ms), measured ones fast (1 ms).
            let samples: &[u64] = if index < 2 { &[50_000; 5] } else { &[1_000; 3] };
            let report = wire_report(id, index, samples, index == 3, Encoding::Deflate);
            merge
                .add(wire::agent_interval(report).expect("decodes"))
                .expect("adds");
        }
    }
    merge.settle();
    let global = merge.global();
    assert_eq!(global.outcomes.success, 2 * 2 * 3, "measured samples only");
    assert_eq!(
        global.latency.max(),
        global.latency.highest_equivalent(1_000)
    );
    for agent in merge.agents.values() {
        assert_eq!(agent.totals.outcomes.success, 6);
    }
    // The warm-up's intervals are still there, with their own figures.
    let intervals = merge.intervals();
    assert_eq!(intervals.len(), 4);
    assert!(merge.is_warmup(intervals[1].index) && !merge.is_warmup(intervals[2].index));
    assert_eq!(intervals[0].global.unseal().outcomes.success, 10);
}

#[test]
fn an_agent_that_joins_mid_run_is_waited_for_only_from_the_open_intervals() {
    let (a, b, late) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut merge = RunMerge::new([(a, "x".to_owned()), (b, "y".to_owned())], 0);
    let add = |m: &mut RunMerge, id, i, samples: &[u64], last| {
        m.add(
            wire::agent_interval(wire_report(id, i, samples, last, Encoding::Plain))
                .expect("decodes"),
        )
    };
    add(&mut merge, a, 0, &[100], false).expect("ok");
    add(&mut merge, b, 0, &[100], false).expect("ok");
    merge.agent_done(b); // lost
    assert_eq!(merge.intervals().len(), 1);
    merge.join(late, "y");
    // Interval 1 now waits for the late agent too.
    add(&mut merge, a, 1, &[100], false).expect("ok");
    assert_eq!(merge.intervals().len(), 1, "waits for the late agent");
    // Its report of the interval closed before it joined is skipped, not
    // refused and not counted; its first open interval counts.
    add(&mut merge, late, 0, &[], false).expect("skipped");
    add(&mut merge, late, 1, &[300, 400], false).expect("ok");
    assert_eq!(merge.intervals().len(), 2);
    let y1 = merge.intervals()[1].regions["y"].unseal();
    assert_eq!(y1.outcomes.success, 2);
    add(&mut merge, a, 2, &[100], true).expect("ok");
    add(&mut merge, late, 2, &[500], true).expect("ok");
    assert!(merge.all_done());
    assert_eq!(merge.agents[&late].intervals, 2);
    assert_eq!(merge.global().outcomes.success, 7);
}

#[test]
fn cumulative_figures_wait_for_settle_and_the_wait_is_bounded() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut merge = RunMerge::new([(a, "x".to_owned()), (b, "x".to_owned())], 0);
    let add = |m: &mut RunMerge, id, i| {
        m.add(
            wire::agent_interval(wire_report(id, i, &[100, 200, 300], false, Encoding::Plain))
                .expect("decodes"),
        )
    };
    add(&mut merge, a, 0).expect("ok");
    add(&mut merge, b, 0).expect("ok");
    // The interval closed with every figure in it ...
    assert_eq!(merge.intervals().len(), 1);
    assert_eq!(merge.intervals()[0].global.unseal().latency.len(), 6);
    // ... while the cumulative ones wait until it has.
    assert_eq!(merge.pending(), 2);
    assert_eq!(merge.agents[&a].totals.latency.len(), 0);
    merge.settle();
    assert_eq!(merge.pending(), 0);
    assert_eq!(merge.agents[&a].totals.latency.len(), 3);
    assert_eq!(merge.phases()["x"].wait.len(), 6);
    assert_eq!(merge.phases()["x"].new_connections, 2);

    // b falls silent: intervals stay open, a's reports pile up, but never
    // past two intervals' worth of the fleet (4 reports here).
    for i in 1..10 {
        add(&mut merge, a, i).expect("ok");
        assert!(merge.pending() <= 4, "{} waiting", merge.pending());
    }
    assert!(merge.intervals().len() == 1, "b holds interval 1 open");
    merge.close_all();
    assert_eq!(merge.pending(), 0);
    assert_eq!(merge.agents[&a].totals.latency.len(), 30);
    assert_eq!(merge.agents[&a].totals.outcomes.success, 30);
    assert_eq!(merge.global().latency.len(), 33);
}

#[test]
fn a_malformed_phase_histogram_drops_only_that_reports_phase_timings() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut merge = RunMerge::new([(a, "x".to_owned()), (b, "x".to_owned())], 0);
    let good = wire_report(a, 0, &[100, 200, 300], true, Encoding::Plain);
    let mut bad = wire_report(b, 0, &[400, 500], true, Encoding::Plain);
    if let Some(p) = bad.phases.as_mut() {
        // A valid header whose payload ends inside a varint; and a valid
        // transfer histogram, which must be left out with it (all or none).
        let mut wait = p.wait_histogram.to_vec();
        wait.pop();
        wait.push(0x80);
        p.wait_histogram = wait.into();
        p.transfer_histogram = p.dns_histogram.clone();
    }
    // Accepted on arrival: the phase histograms are not decoded yet.
    merge
        .add(wire::agent_interval(good).expect("decodes"))
        .expect("merges");
    merge
        .add(wire::agent_interval(bad).expect("the rest of it decodes"))
        .expect("merges");
    merge.close_all();

    // Everything but b's phase histograms is merged.
    let global = merge.global();
    assert_eq!(global.latency.len(), 5);
    assert_eq!(global.outcomes.success, 5);
    assert_eq!(merge.agents[&b].totals.latency.len(), 2);
    let phases = &merge.phases()["x"];
    assert_eq!(phases.wait.len(), 3, "a's wait phase only");
    assert_eq!(phases.wait.to_histogram().max(), 300);
    assert_eq!(phases.transfer.len(), 0);
    // b's connection counts were checked on arrival and stay.
    assert_eq!(phases.new_connections, 2);
    assert_eq!(global.new_connections, 2);

    let dropped = merge.take_dropped_phases();
    assert_eq!(dropped.len(), 1);
    assert_eq!(
        (
            dropped[0].agent_id,
            dropped[0].region.as_str(),
            dropped[0].index
        ),
        (b, "x", 0)
    );
    assert_eq!(dropped[0].error.phase, "wait");
    assert!(merge.take_dropped_phases().is_empty(), "taken once");
}

#[test]
fn an_oversized_phase_histogram_is_refused_on_arrival() {
    let mut report = wire_report(Uuid::new_v4(), 0, &[100], true, Encoding::Plain);
    if let Some(p) = report.phases.as_mut() {
        p.tls_histogram = vec![0; stampede_proto::histogram::MAX_ENCODED_BYTES + 1].into();
    }
    assert!(matches!(
        wire::agent_interval(report),
        Err(wire::ReportError::Histogram { which: "tls", .. })
    ));
}

#[test]
fn an_oversized_schedule_lag_histogram_is_refused_on_arrival() {
    let mut report = wire_report(Uuid::new_v4(), 0, &[100], true, Encoding::Plain);
    report.schedule_lag_histogram =
        vec![0; stampede_proto::histogram::MAX_ENCODED_BYTES + 1].into();
    assert!(matches!(
        wire::agent_interval(report),
        Err(wire::ReportError::Histogram {
            which: "schedule lag",
            ..
        })
    ));
}

#[test]
fn a_malformed_latency_histogram_refuses_the_report_before_anything_counts() {
    let id = Uuid::new_v4();
    let mut merge = RunMerge::new([(id, "x".to_owned())], 0);
    let mut bad = wire_report(id, 0, &[100, 200], false, Encoding::Plain);
    // A valid header whose payload ends inside a varint.
    let mut latency = bad.latency_histogram.to_vec();
    latency.pop();
    latency.push(0x80);
    bad.latency_histogram = latency.into();
    let refused = merge.add(wire::agent_interval(bad).expect("checked, not decoded"));
    assert!(
        matches!(&refused, Err(MergeError::Malformed { agent, source }) if *agent == id && source.which == "latency"),
        "{refused:?}"
    );
    // Nothing of it counted: the same interval is taken whole after.
    merge
        .add(
            wire::agent_interval(wire_report(id, 0, &[300], true, Encoding::Plain))
                .expect("decodes"),
        )
        .expect("merges");
    merge.close_all();
    assert_eq!(merge.global().latency.len(), 1);
    assert_eq!(merge.global().outcomes.success, 1);
    assert_eq!(merge.agents[&id].totals.latency.len(), 1);
    assert_eq!(merge.agents[&id].intervals, 1);
}
