use super::*;
use crate::report::fixture::{self, slice, spread};
use crate::report::model::ThresholdResult;
use crate::scenario::Arrival;
use crate::scenario::search::{DEFAULT_MAX_SCHEDULE_LAG, SearchMode, Tolerance};
use crate::scenario::stages::LevelUnit;

fn spec() -> SearchSpec {
    SearchSpec {
        slo: Vec::new(),
        unit: LevelUnit::Rate,
        min: 100.0,
        max: 1000.0,
        start: 100.0,
        step: Duration::from_secs(2),
        settle: Duration::from_secs(1),
        tolerance: Tolerance::Relative(0.05),
        mode: SearchMode::Global,
        max_schedule_lag: DEFAULT_MAX_SCHEDULE_LAG,
    }
}

const OPEN: Model = Model::Open {
    rate: 500.0,
    arrival: Arrival::Constant,
};

/// A probe at 500 req/s over 2 s: 1000 requests of 1–3 ms in one region,
/// with the given schedule lag p99 (µs) and p99 threshold verdict.
fn probe(lag_p99_us: u64, p99_passed: bool) -> RunReport {
    let mut report = fixture::report(&[(
        "eu-west",
        vec![
            slice(spread(1000, 3000, 500), 0),
            slice(spread(1000, 3000, 500), 0),
        ],
    )]);
    report.global.schedule_lag_us.p99 = lag_p99_us;
    report.regions[0].summary.schedule_lag_us.p99 = lag_p99_us;
    report.thresholds = vec![ThresholdResult {
        threshold: "p99 < 50ms".into(),
        scope: "global".into(),
        metric: "p99".into(),
        limit: 50_000.0,
        actual: Some(if p99_passed { 2_900.0 } else { 120_000.0 }),
        passed: p99_passed,
    }];
    report
}

fn context(spec: &SearchSpec, healthy_latency_us: Option<f64>, pool: f64) -> ProbeContext<'_> {
    ProbeContext {
        spec,
        focus: None,
        level: 500.0,
        model: OPEN,
        pool,
        think: Duration::ZERO,
        healthy_latency_us,
    }
}

#[test]
fn passes_when_the_slo_holds_and_the_generator_keeps_up() {
    let spec = spec();
    let j = judge(&probe(300, true), &context(&spec, Some(2_000.0), 20.0));
    assert_eq!(j.verdict, Verdict::Pass, "{j:?}");
    assert!(j.failed.is_empty() && j.note.is_none());
}

#[test]
fn a_failed_slo_line_is_named_with_its_figure() {
    let spec = spec();
    let j = judge(&probe(300, false), &context(&spec, Some(2_000.0), 20.0));
    assert_eq!(j.verdict, Verdict::Fail);
    assert_eq!(j.failed, ["p99 < 50ms (was 120.00ms)"]);
    assert_eq!(j.failed_metrics, ["p99"]);
}

#[test]
fn a_throughput_shortfall_fails_the_probe() {
    let spec = spec();
    // 900 of the 1000 requests completed within the step.
    let mut report = probe(300, true);
    report.intervals[1].global.requests -= 100;
    let j = judge(&report, &context(&spec, Some(2_000.0), 20.0));
    assert_eq!(j.verdict, Verdict::Fail);
    assert_eq!(j.failed_metrics, ["throughput"]);
    assert!(j.failed[0].contains("450.0 of 500 req/s"), "{:?}", j.failed);
}

#[test]
fn lag_while_the_slo_holds_is_the_generator() {
    let spec = spec();
    let j = judge(&probe(40_000, true), &context(&spec, Some(2_000.0), 20.0));
    assert_eq!(j.verdict, Verdict::GeneratorSaturated);
    let note = j.note.expect("a note");
    assert!(
        note.contains("schedule lag p99 40.00ms > search.max_schedule_lag 5.00ms"),
        "{note}"
    );
}

#[test]
fn lag_with_a_failed_slo_is_the_target_when_the_pool_had_room() {
    // 500 req/s × 2 ms = 1 connection busy of 20: responses slowed down.
    let spec = spec();
    let j = judge(&probe(40_000, false), &context(&spec, Some(2_000.0), 20.0));
    assert_eq!(j.verdict, Verdict::Fail, "{j:?}");
}

#[test]
fn lag_with_a_failed_slo_is_the_generator_when_the_pool_is_too_small() {
    // 500 req/s × 2 ms = 1 connection busy: more than 80% of a pool of 1.
    let spec = spec();
    let j = judge(&probe(40_000, false), &context(&spec, Some(2_000.0), 1.0));
    assert_eq!(j.verdict, Verdict::GeneratorSaturated);
    let note = j.note.expect("a note");
    assert!(note.contains("raise load.connections"), "{note}");
    // With nothing passed to compare with, the search does not guess.
    let j = judge(&probe(40_000, false), &context(&spec, None, 20.0));
    assert_eq!(j.verdict, Verdict::GeneratorSaturated);
    assert!(j.note.expect("a note").contains("cannot tell"));
}

#[test]
fn a_partial_probe_cannot_be_judged() {
    let spec = spec();
    let mut report = probe(300, true);
    report.status = RunStatus::Partial;
    report.notes = vec!["agent x (eu-west) was lost mid-run".into()];
    let j = judge(&report, &context(&spec, None, 20.0));
    assert_eq!(j.verdict, Verdict::Incomplete);
    assert!(j.note.expect("a note").contains("was lost mid-run"));
}

#[test]
fn closed_model_connections_that_are_not_kept_busy_are_the_generator() {
    let mut spec = spec();
    spec.unit = LevelUnit::Connections;
    let mut cx = context(&spec, None, 0.0);
    cx.model = Model::Closed;
    cx.level = 10.0;
    // 10 connections at a ~2 ms mean should complete ~5000 req/s; 500 is far short.
    let j = judge(&probe(0, true), &cx);
    assert_eq!(j.verdict, Verdict::GeneratorSaturated, "{j:?}");
    assert!(
        j.note
            .expect("a note")
            .contains("could not keep their connections busy")
    );
    // One connection: ~500 req/s expected, 500 completed.
    cx.level = 1.0;
    assert_eq!(judge(&probe(0, true), &cx).verdict, Verdict::Pass);
}

#[test]
fn levels_read_like_numbers() {
    assert_eq!(level_text(41_200.0), "41 200");
    assert_eq!(level_text(1_234_567.0), "1 234 567");
    assert_eq!(level_text(950.0), "950");
    assert_eq!(level_text(12.5), "12.5");
}

#[test]
fn step_throughput_spreads_the_graceful_tail_over_its_time() {
    let mut report = probe(300, true);
    assert_eq!(step_rps(&report, None), 500.0);
    assert_eq!(step_rps(&report, Some("eu-west")), 500.0);
    assert_eq!(step_rps(&report, Some("mars")), 0.0);
    // Interval 0 settles; the last one runs 1.4 s past the end to finish a
    // backlog of 700 more requests: 1200 in 2.4 s, still 500 req/s.
    report.intervals[0].warmup = true;
    report.intervals[1].end_s = 3.4;
    report.intervals[1].global.requests += 700;
    assert_eq!(step_rps(&report, None), 500.0);
}
