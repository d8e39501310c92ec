use super::*;
use crate::events::fixture::*;

fn running() -> LiveView {
    let mut v = LiveView::default();
    v.apply(&RunEvent::Waiting(plan()));
    for (agent, region) in [
        (1, "us-east"),
        (2, "us-east"),
        (3, "eu-west"),
        (4, "eu-west"),
    ] {
        v.apply(&joined(agent, region));
    }
    v.apply(&RunEvent::Starting(start()));
    v
}

#[test]
fn waiting_shows_the_agents_so_far() {
    let mut v = LiveView::default();
    v.apply(&RunEvent::Waiting(plan()));
    v.apply(&joined(1, "eu-west"));
    let block = v.block(START);
    assert!(
        block.starts_with("checkout · waiting for agents: 1 connected of 4\n"),
        "{block}"
    );
    let eu = block
        .lines()
        .find(|l| l.starts_with("eu-west"))
        .expect("a row");
    assert_eq!(
        eu.split_whitespace().collect::<Vec<_>>(),
        ["eu-west", "1/2", "-", "-", "-", "-", "0"]
    );
}

#[test]
fn the_block_shows_stage_time_left_and_the_last_intervals_figures() {
    let mut v = running();
    v.apply(&interval(
        0,
        true,
        figures(100, 0, 5_000, 7_000),
        figures(100, 0, 40_000, 42_000),
    ));
    v.apply(&interval(
        2,
        false,
        figures(150, 3, 6_470, 7_040),
        figures(150, 0, 41_250, 42_110),
    ));
    v.apply(&RunEvent::AgentLeft {
        agent: Uuid::from_u128(2),
        region: "us-east".into(),
    });
    let block = v.block(START + 3 * SECOND + SECOND / 2);
    let lines: Vec<&str> = block.lines().collect();
    assert_eq!(
        lines[0],
        "checkout · steady 300 req/s · 7s left · agents 3/4"
    );
    assert_eq!(
        lines[1],
        format!("[{}{}] 3/10s", "#".repeat(10), ".".repeat(20))
    );
    assert!(lines[2].ends_with("(interval 2)"), "{}", lines[2]);
    let cells = |prefix: &str| -> Vec<String> {
        block
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} row in\n{block}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // Requests so far leave the warm-up out.
    assert_eq!(
        cells("us-east"),
        ["us-east", "1/2", "150.0", "3", "6.47ms", "7.04ms", "150"]
    );
    assert_eq!(
        cells("eu-west"),
        ["eu-west", "2/2", "150.0", "0", "41.25ms", "42.11ms", "150"]
    );
    assert_eq!(
        cells("all"),
        ["all", "3/4", "300.0", "3", "30.00ms", "42.11ms", "300"]
    );
    // Rows line up: every row as wide as the heading's columns.
    let width = |l: &str| l.chars().count();
    assert_eq!(width(lines[3]), width(lines[4]));
    assert_eq!(width(lines[3]), width(lines[5]));
}

#[test]
fn before_the_start_and_after_the_end_it_says_so() {
    let v = running();
    assert!(
        v.block(START - SECOND)
            .starts_with("checkout · starting · agents 4/4")
    );
    let after = v.block(START + 12 * SECOND);
    assert!(
        after.starts_with("checkout · collecting the last reports · agents 4/4\n[##"),
        "{after}"
    );
    assert!(after.contains("] 10/10s"), "the bar stops full: {after}");
}

#[test]
fn a_series_names_its_run() {
    let mut v = running();
    let mut second = (*start()).clone();
    second.run = 2;
    second.runs = 3;
    v.apply(&RunEvent::Starting(Arc::new(second)));
    assert!(
        v.block(START + SECOND)
            .starts_with("checkout · run 2 of 3 · warmup 100 req/s · 9s left"),
        "{}",
        v.block(START + SECOND)
    );
}

#[test]
fn one_line_per_interval_says_where_the_run_is_and_each_scope() {
    let mut v = running();
    let warm = interval(
        1,
        true,
        figures(100, 0, 5_000, 7_000),
        figures(100, 0, 40_000, 42_000),
    );
    v.apply(&warm);
    let RunEvent::IntervalClosed(snapshot) = &warm else {
        unreachable!()
    };
    assert_eq!(
        v.interval_line(snapshot),
        "interval 1 (1-2s) warmup 100, 8s left, agents 4/4, warm-up (not counted) \
         | all 200.0 rps, 0 errors, p50 30.00ms, p99 42.00ms \
         | us-east 100.0 rps, 0 errors, p50 5.00ms, p99 7.00ms \
         | eu-west 100.0 rps, 0 errors, p50 40.00ms, p99 42.00ms"
    );
    let steady = interval(4, false, figures(150, 2, 5_000, 7_000), figures(0, 0, 0, 0));
    let RunEvent::IntervalClosed(snapshot) = &steady else {
        unreachable!()
    };
    let line = v.interval_line(snapshot);
    assert!(
        line.starts_with("interval 4 (4-5s) steady 300, 5s left"),
        "{line}"
    );
    assert!(
        line.contains("| eu-west 0.0 rps, 0 errors, p50 -, p99 -"),
        "a scope with no success shows no latency: {line}"
    );
    assert!(!line.contains('\n'));
}

#[test]
fn seconds_read_well() {
    assert_eq!(seconds(3.0), "3");
    assert_eq!(seconds(2.5), "2.5");
    assert_eq!(seconds(2.9999), "3");
    assert_eq!(seconds(0.04), "0");
}
