//! The run history survives a coordinator's crash: what was merged until
//! the kill is kept, the run is marked aborted on the next start, and
//! earlier runs stay. A file that is not a Stampede history is refused,
//! untouched.

mod support;

use stampede_coordinator::history::History;
use std::time::Duration;
use support::standing::{
    client, scenario_yaml, spawn_standing, spawn_standing_agent, submission, token_file, wait_for,
    wait_until_over,
};
use support::{spawn, start_target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_coordinator_mid_run_keeps_the_history_and_marks_the_run_aborted() {
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    let token = token_file(dir.path());
    let path = dir.path().join("history.db");
    let mut standing = spawn_standing("coordinator", &path, &token);
    let mut agent = spawn_standing_agent("agent", &standing.agents_url, "local", &token);
    let api = client(&standing.api_url);

    let short = api
        .submit(&submission(
            scenario_yaml("soak", target, 40, "2s", &["local"], &[]),
            &[],
            "1111",
        ))
        .await
        .expect("submitted");
    let short = wait_until_over(&api, &short.id, Duration::from_secs(60)).await;
    assert_eq!(short.state, "passed", "{short:?}");

    // A long run: the coordinator is killed once two intervals are kept.
    let long = api
        .submit(&submission(
            scenario_yaml("soak", target, 40, "60s", &["local"], &[]),
            &[],
            "2222",
        ))
        .await
        .expect("submitted");
    let running = wait_for(&api, &long.id, Duration::from_secs(60), |r| {
        r.intervals >= 2
    })
    .await;
    assert_eq!(running.state, "running");
    standing.proc.stop(); // SIGKILL: no chance to write anything more
    agent.stop();

    // Readable as the crash left it: the run still says running.
    {
        let history = History::open(&path).expect("the history opens after a crash");
        let row = history
            .get(&long.id)
            .expect("query")
            .expect("the run is there");
        assert_eq!(row.state, "running");
        assert!(row.intervals >= 2, "{row:?}");
    }

    // A restarted coordinator marks it aborted and keeps everything else.
    let restarted = spawn_standing("restarted", &path, &token);
    let api = client(&restarted.api_url);
    let row = api.run(&long.id).await.expect("the run is still there");
    assert_eq!(row.state, "aborted", "{row:?}");
    assert!(
        row.intervals >= running.intervals,
        "what was merged is kept: {row:?}"
    );
    assert!(
        row.error
            .as_deref()
            .unwrap_or("")
            .contains("stopped before the run ended")
    );
    // What was merged before the kill: each kept interval's figures and its
    // merged latency histogram, which holds exactly its successes.
    let intervals = api.intervals(&long.id).await.expect("intervals");
    assert_eq!(intervals.len() as u64, row.intervals);
    for interval in &intervals {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&interval.latency_histogram)
            .expect("base64");
        let histogram = stampede_proto::histogram::decode(&bytes).expect("a histogram");
        assert_eq!(
            Some(histogram.len()),
            interval.figures["successes"].as_u64(),
            "interval {}",
            interval.index
        );
        assert!(
            !histogram.is_empty(),
            "interval {} had load",
            interval.index
        );
    }
    let kept = api.run(&short.id).await.expect("the earlier run stays");
    assert_eq!(kept.state, "passed");
    assert_eq!(kept.summary, short.summary);
    let report = api.report(&short.id).await.expect("its report stays");
    assert_eq!(
        report.global.requests,
        short.summary.expect("summary").requests
    );
}

#[test]
fn a_corrupt_or_foreign_database_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().expect("tmp");
    let token = token_file(dir.path());
    let corrupt = dir.path().join("corrupt.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend((0..8192u32).map(|i| (i * 31 % 253) as u8));
    std::fs::write(&corrupt, &bytes).expect("write");
    let foreign = dir.path().join("foreign.db");
    {
        let conn = rusqlite::Connection::open(&foreign).expect("sqlite");
        conn.execute_batch("CREATE TABLE orders (id INTEGER); INSERT INTO orders VALUES (7);")
            .expect("their data");
    }
    let foreign_bytes = std::fs::read(&foreign).expect("read");
    let text = dir.path().join("notes.db");
    std::fs::write(&text, "not a database at all\n").expect("write");

    for (file, before, why) in [
        (&corrupt, bytes.clone(), "not a Stampede history database"),
        (
            &foreign,
            foreign_bytes.clone(),
            "a SQLite database of another application",
        ),
        (
            &text,
            b"not a database at all\n".to_vec(),
            "does not start with the SQLite header",
        ),
    ] {
        let path = file.to_str().expect("utf-8");
        let mut serve = spawn(
            "coordinator",
            &[
                "coordinator",
                "--serve",
                "--listen",
                "127.0.0.1:0",
                "--api-listen",
                "127.0.0.1:0",
                "--history",
                path,
                "--token-file",
                token.to_str().expect("utf-8"),
                "--insecure-plaintext",
            ],
        );
        let (status, stderr) = serve.wait(Duration::from_secs(30));
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(path) && stderr.contains(why), "{stderr}");
        assert!(stderr.contains("left untouched"), "{stderr}");
        let mut history = spawn("history", &["history", "--history", path]);
        let (status, stderr) = history.wait(Duration::from_secs(30));
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert_eq!(
            std::fs::read(file).expect("read"),
            before,
            "{path} unchanged"
        );
        for suffix in ["-wal", "-shm", "-journal"] {
            let side = format!("{path}{suffix}");
            assert!(!std::path::Path::new(&side).exists(), "{side} was created");
        }
    }
}
