use super::*;
use crate::report::fixture::{report, slice, spread};

fn submission(id: &str, scenario: &str, labels: &[&str], at: i64) -> Submission {
    Submission {
        id: id.into(),
        scenario_name: scenario.into(),
        scenario_file: "s.yaml".into(),
        scenario_text: "name: x\n".into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        git_sha: Some("abc123".into()),
        submitted_at_ms: at,
    }
}

fn a_report() -> RunReport {
    report(&[("r", vec![slice(spread(1_000, 2_000, 100), 5)])])
}

#[test]
fn runs_are_kept_listed_and_filtered() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("h.db");
    let h = History::open(&path).expect("a new history");
    h.insert(&submission("a", "checkout", &["branch=main"], 1_000))
        .expect("insert");
    h.insert(&submission("b", "checkout", &["branch=dev"], 2_000))
        .expect("insert");
    h.insert(&submission("c", "search", &["branch=main"], 3_000))
        .expect("insert");
    let r = a_report();
    h.finish("a", RunState::Passed, Some(&r), None, 1_500)
        .expect("finish");
    h.finish("b", RunState::Failed, Some(&r), None, 2_500)
        .expect("finish");
    let all = h.list(&HistoryFilter::default()).expect("list");
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["c", "b", "a"],
        "newest first"
    );
    let main = HistoryFilter {
        labels: vec!["branch=main".into()],
        ..Default::default()
    };
    let ids: Vec<_> = h
        .list(&main)
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["c", "a"]);
    let since = HistoryFilter {
        scenario: Some("checkout".into()),
        since_ms: Some(1_500),
        ..Default::default()
    };
    let ids: Vec<_> = h
        .list(&since)
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["b"]);
    let a = h.get("a").expect("get").expect("a is there");
    let summary = a.summary.expect("a summary");
    assert_eq!(summary.requests, r.global.requests);
    assert_eq!(summary.p99_us, r.global.latency_us.p99);
    assert_eq!(a.labels, ["branch=main"]);
    assert_eq!(
        h.report("a").expect("report"),
        Some(r.clone()),
        "the report round-trips"
    );
    assert_eq!(h.report("c").expect("no report yet"), None);
    assert!(matches!(h.report("zzz"), Err(HistoryError::NoSuchRun(_))));

    let last = h
        .last_passing("checkout", &[], Some(10_000), Some("b"))
        .expect("query")
        .expect("a passing run");
    assert_eq!(last.id, "a");
    assert!(
        h.last_passing("checkout", &["branch=dev".into()], None, None)
            .expect("query")
            .is_none(),
        "the only dev run failed"
    );
    let trend = h.trend("checkout", 10_000, 5).expect("trend");
    assert_eq!(
        trend.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"],
        "oldest first"
    );
}

#[test]
fn a_crash_leaves_intervals_and_the_next_start_marks_the_run_aborted() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("h.db");
    {
        let h = History::open(&path).expect("open");
        h.insert(&submission("a", "checkout", &[], 1_000))
            .expect("insert");
        h.insert(&submission("q", "checkout", &[], 1_001))
            .expect("insert");
        h.mark_running("a", 1_100).expect("running");
        use crate::events::fixture::{figures, interval};
        let event = interval(
            0,
            false,
            figures(100, 0, 1_000, 2_000),
            figures(50, 1, 900, 3_000),
        );
        let crate::events::RunEvent::IntervalClosed(snapshot) = event else {
            unreachable!()
        };
        h.record_interval("a", &snapshot).expect("interval");
        // Dropped without finishing: as a crash leaves it.
    }
    let h = History::open(&path).expect("reopen");
    assert_eq!(h.recover(2_000).expect("recover"), 2);
    let a = h.get("a").expect("get").expect("a");
    assert_eq!(a.state, "aborted");
    assert_eq!(a.intervals, 1, "what was merged is kept");
    let q = h.get("q").expect("get").expect("q");
    assert_eq!(q.state, "aborted");
    assert_eq!(
        q.error.as_deref(),
        Some("the coordinator stopped before its turn")
    );
    assert_eq!(
        a.error.as_deref(),
        Some("the coordinator stopped before the run ended")
    );
    assert_eq!(h.recover(3_000).expect("recover"), 0);
}

#[test]
fn foreign_and_corrupt_files_are_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().expect("tmp");
    let corrupt = dir.path().join("corrupt.db");
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&corrupt, &bytes).expect("write");
    let error = History::open(&corrupt).expect_err("refused");
    assert!(matches!(error, HistoryError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("left untouched"), "{error}");
    assert_eq!(std::fs::read(&corrupt).expect("read"), bytes);

    let foreign = dir.path().join("foreign.db");
    {
        let conn = rusqlite::Connection::open(&foreign).expect("sqlite");
        conn.execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('mine');")
            .expect("their schema");
    }
    let before = std::fs::read(&foreign).expect("read");
    let error = History::open(&foreign).expect_err("refused");
    assert!(matches!(error, HistoryError::Foreign { .. }), "{error}");
    assert_eq!(std::fs::read(&foreign).expect("read"), before);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("h.db");
    drop(History::open(&path).expect("open"));
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.pragma_update(None, "user_version", schema::SCHEMA_VERSION + 1)
            .expect("bump");
    }
    let error = History::open(&path).expect_err("too new");
    assert!(matches!(error, HistoryError::TooNew { .. }), "{error}");
}
