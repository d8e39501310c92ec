use super::*;
use crate::events::fixture::*;
use crate::report::fixture::{report, slice, spread};
use crate::report::model::ThresholdResult;
use std::collections::BTreeMap;

/// The page's samples by `name{labels}` as written (our own output, so a
/// line split is enough here; the integration test uses a real parser).
fn page_has(m: &MetricsState, family: &str) -> bool {
    m.render(START).contains(family)
}

fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("name value");
            (key.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

#[test]
fn before_a_run_the_state_is_waiting_with_the_agents_so_far() {
    let mut m = MetricsState::new();
    m.apply(&RunEvent::Waiting(plan()));
    m.apply(&joined(1, "us-east"));
    m.apply(&joined(2, "us-east"));
    m.apply(&joined(3, "eu-west"));
    m.apply(&RunEvent::AgentLeft {
        agent: Uuid::from_u128(2),
        region: "us-east".into(),
    });
    let s = samples(&m.render(START));
    assert_eq!(s["stampede_run_state{state=\"waiting\"}"], 1.0);
    assert_eq!(s["stampede_run_state{state=\"running\"}"], 0.0);
    assert_eq!(s["stampede_agents_connected{region=\"us-east\"}"], 1.0);
    assert_eq!(s["stampede_agents_connected{region=\"eu-west\"}"], 1.0);
    assert_eq!(s["stampede_agents_expected{region=\"eu-west\"}"], 2.0);
    assert!(
        !s.keys().any(|k| k.starts_with("stampede_requests_total")),
        "no counters before a run"
    );
}

#[test]
fn counters_add_measured_intervals_and_gauges_show_the_last_one() {
    let mut m = MetricsState::new();
    m.apply(&RunEvent::Starting(start()));
    let page = m.render(START + SECOND / 2);
    let s = samples(&page);
    assert_eq!(s["stampede_run_state{state=\"running\"}"], 1.0);
    assert_eq!(
        s["stampede_requests_total{scope=\"region\",region=\"eu-west\"}"], 0.0,
        "every region's counter exists from the start"
    );
    assert_eq!(
        s["stampede_stage_info{stage=\"warmup 100\",kind=\"warmup\"}"],
        1.0
    );
    assert_eq!(s["stampede_run_remaining_seconds"], 9.5);

    // A warm-up interval shows in the gauges, not in the counters.
    m.apply(&interval(
        0,
        true,
        figures(50, 0, 5_000, 7_000),
        figures(50, 0, 40_000, 42_000),
    ));
    m.apply(&interval(
        2,
        false,
        figures(150, 2, 5_000, 7_000),
        figures(150, 0, 40_000, 42_000),
    ));
    m.apply(&interval(
        3,
        false,
        figures(148, 1, 6_000, 9_000),
        figures(150, 0, 41_000, 44_000),
    ));
    let s = samples(&m.render(START + 4 * SECOND));
    let region =
        |name: &str, region: &str| s[&format!("{name}{{scope=\"region\",region=\"{region}\"}}")];
    assert_eq!(region("stampede_requests_total", "us-east"), 298.0);
    assert_eq!(region("stampede_requests_total", "eu-west"), 300.0);
    assert_eq!(s["stampede_requests_total{scope=\"global\"}"], 598.0);
    assert_eq!(
        s["stampede_errors_total{scope=\"region\",region=\"us-east\",class=\"timeout\"}"],
        3.0
    );
    assert_eq!(
        s["stampede_errors_total{scope=\"global\",class=\"5xx\"}"],
        0.0
    );
    // By status code, the measured intervals' successes (the fixture's
    // timeouts have no status).
    assert_eq!(
        s["stampede_responses_total{scope=\"region\",region=\"us-east\",code=\"200\"}"],
        295.0
    );
    assert_eq!(
        s["stampede_responses_total{scope=\"global\",code=\"200\"}"],
        595.0
    );
    assert!(
        !page_has(&m, "stampede_grpc_responses_total"),
        "no gRPC calls, no gRPC family"
    );
    assert_eq!(s["stampede_interval_index"], 3.0);
    assert_eq!(s["stampede_interval_warmup"], 0.0);
    assert_eq!(
        region("stampede_interval_requests_per_second", "us-east"),
        148.0
    );
    assert_eq!(
        s["stampede_interval_latency_seconds{scope=\"region\",region=\"us-east\",quantile=\"0.99\"}"],
        0.009
    );
    assert_eq!(
        s["stampede_interval_latency_seconds{scope=\"global\",quantile=\"0.5\"}"],
        0.03
    );
    assert_eq!(
        s["stampede_stage_info{stage=\"steady 300\",kind=\"steady\"}"],
        1.0
    );
    assert_eq!(
        s["stampede_load_level{unit=\"requests_per_second\"}"],
        300.0
    );
}

#[test]
fn a_finished_run_shows_the_reports_figures_and_verdicts() {
    let mut r = report(&[
        ("us-east", vec![slice(spread(5_000, 7_000, 100), 2)]),
        ("eu-west", vec![slice(spread(40_000, 44_000, 100), 0)]),
    ]);
    r.thresholds = vec![ThresholdResult {
        threshold: "eu-west: p99 < 1ms".into(),
        scope: "eu-west".into(),
        metric: "p99".into(),
        limit: 1000.0,
        actual: Some(44_000.0),
        passed: false,
    }];
    r.global.grpc_codes = BTreeMap::from([("OK".into(), 190), ("UNAVAILABLE".into(), 10)]);
    let mut m = MetricsState::new();
    m.apply(&RunEvent::Starting(start()));
    // An interval seen live, then the report, which is the final word.
    m.apply(&interval(
        2,
        false,
        figures(10, 0, 5_000, 7_000),
        figures(10, 0, 40_000, 42_000),
    ));
    m.apply(&RunEvent::Finished(Arc::new(r.clone())));
    assert_eq!(m.state(), RunState::Finished);
    let page = m.render(START + 20 * SECOND);
    let s = samples(&page);
    assert_eq!(s["stampede_run_state{state=\"finished\"}"], 1.0);
    assert_eq!(
        s["stampede_requests_total{scope=\"global\"}"],
        r.global.requests as f64
    );
    assert_eq!(
        s["stampede_errors_total{scope=\"region\",region=\"us-east\",class=\"5xx\"}"],
        2.0
    );
    assert_eq!(
        s["stampede_run_latency_seconds{scope=\"region\",region=\"eu-west\",quantile=\"0.99\"}"],
        r.regions[1].summary.latency_us.p99 as f64 / 1e6
    );
    assert_eq!(
        s["stampede_grpc_responses_total{scope=\"global\",code=\"UNAVAILABLE\"}"], 10.0,
        "the report's codes replace what was counted live"
    );
    assert_eq!(
        s["stampede_threshold_passed{scope=\"region\",region=\"eu-west\",threshold=\"eu-west: p99 < 1ms\"}"],
        0.0
    );
    assert!(
        !s.keys().any(|k| k.starts_with("stampede_stage_info")),
        "no stage after the end"
    );
}

#[test]
fn the_summary_of_a_report_needs_no_events() {
    let r = report(&[("local", vec![slice([1_000, 2_000], 1)])]);
    let s = samples(&MetricsState::finished(&r).render(0));
    assert_eq!(s["stampede_run_state{state=\"finished\"}"], 1.0);
    assert_eq!(
        s[&format!(
            "stampede_run_info{{scenario=\"fixture\",run_id=\"{}\",run=\"1\",runs=\"1\"}}",
            r.run_id
        )],
        1.0
    );
    assert_eq!(
        s["stampede_requests_total{scope=\"region\",region=\"local\"}"],
        3.0
    );
    assert_eq!(
        s["stampede_errors_total{scope=\"global\",class=\"5xx\"}"],
        1.0
    );
}
