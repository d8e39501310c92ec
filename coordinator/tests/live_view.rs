//! The live view when stdout is not a terminal (a pipe here, a Kubernetes
//! Job's log in production): one plain line per closed interval, in order,
//! agreeing with the report; none with `--quiet`; on stderr with `--json`,
//! so stdout stays the JSON alone.

mod support;

use stampede_coordinator::report::model::RunReport;
use std::time::Duration;
use support::{spawn, start_target};

/// Runs `stampede bench` against `target` for 2 s at 100 req/s with
/// `extra` flags; returns its stdout lines, stderr and the report.
fn bench(target: &str, extra: &[&str]) -> (Vec<String>, String, RunReport) {
    let dir = tempfile::tempdir().expect("temp dir");
    let report_path = dir.path().join("report.json");
    let url = format!("http://{target}/");
    let mut args = vec![
        "bench",
        &url,
        "-R",
        "100",
        "-c",
        "4",
        "-d",
        "2s",
        "--report",
        report_path.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let mut bench = spawn("bench", &args);
    let (status, stderr) = bench.wait(Duration::from_secs(60));
    assert!(status.success(), "bench failed: {status}\n{stderr}");
    let stdout = bench.remaining_stdout();
    let report =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report written"))
            .expect("report parses");
    (stdout, stderr, report)
}

fn interval_lines(text: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    text.into_iter()
        .filter(|l| l.as_ref().starts_with("interval "))
        .map(|l| l.as_ref().to_owned())
        .collect()
}

#[test]
fn without_a_terminal_the_live_view_prints_one_line_per_interval() {
    let (mut server, addr) = start_target(&[]);
    let target = addr.to_string();

    let (stdout, _, report) = bench(&target, &[]);
    let lines = interval_lines(&stdout);
    assert!(
        report.intervals.len() >= 2,
        "{} intervals",
        report.intervals.len()
    );
    assert_eq!(
        lines.len(),
        report.intervals.len(),
        "one line per interval:\n{}",
        stdout.join("\n")
    );
    for (line, interval) in lines.iter().zip(&report.intervals) {
        let expected = format!("interval {} ({}-", interval.index, interval.start_s.round());
        assert!(line.starts_with(&expected), "{line:?} for {expected:?}");
        assert!(
            line.contains(&format!("| all {:.1} rps, ", interval.global.rps)),
            "{line}"
        );
        assert!(line.contains("agents 1/1"), "{line}");
        assert!(line.contains("| local "), "{line}");
    }
    // The lines come before the result table.
    let table = stdout
        .iter()
        .position(|l| l.starts_with("region "))
        .expect("the table");
    let last_line = stdout
        .iter()
        .rposition(|l| l.starts_with("interval "))
        .expect("a line");
    assert!(last_line < table);

    let (stdout, stderr, _) = bench(&target, &["--quiet"]);
    assert!(interval_lines(&stdout).is_empty(), "{stdout:?}");
    assert!(interval_lines(stderr.lines()).is_empty());

    let (stdout, stderr, report) = bench(&target, &["--json"]);
    let json: RunReport =
        serde_json::from_str(&stdout.join("\n")).expect("stdout is the JSON alone");
    assert_eq!(json.run_id, report.run_id);
    assert_eq!(interval_lines(stderr.lines()).len(), report.intervals.len());
    server.stop();
}
