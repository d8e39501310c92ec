//! The result formats through the real `stampede` binary, on the report of
//! a real (short) demo run: `demo --html`, `report --format
//! table|json|csv|html|hlog`, and `compare` with its regression gate.
//!
//! The `.hlog` files are read back twice: with the `hdrhistogram` crate's
//! log iterator, and with an independent implementation, the Python
//! HdrHistogram package (`pip install hdrhistogram`). Without it the Python
//! check is skipped with a message, unless `STAMPEDE_REQUIRE_PYTHON_HDRH=1`
//! (CI sets it).

mod support;

use base64::Engine;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use stampede_coordinator::report::{self, build, model::RunReport};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};
use support::{spawn, spawn_command};

/// Runs `stampede args…`; returns its exit code, stdout lines and stderr.
fn stampede(args: &[&str]) -> (Option<i32>, Vec<String>, String) {
    let mut p = spawn(&format!("stampede {}", args.join(" ")), args);
    let (status, stderr) = p.wait(Duration::from_secs(120));
    (status.code(), p.remaining_stdout(), stderr)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A copy of `report` whose every latency is `factor` times larger.
fn slowed(report: &RunReport, factor: f64) -> RunReport {
    let scale = |encoded: &mut String| {
        let h = build::decode_base64(encoded).expect("a report histogram");
        let mut slow = stampede_proto::histogram::new_latency_histogram();
        for v in h.iter_recorded() {
            let value = (v.value_iterated_to() as f64 * factor) as u64;
            slow.record_n(value, v.count_at_value()).expect("in range");
        }
        *encoded = build::encode_base64(&slow);
    };
    let mut r = report.clone();
    scale(&mut r.global.latency_histogram);
    for region in &mut r.regions {
        scale(&mut region.summary.latency_histogram);
    }
    for agent in &mut r.agents {
        scale(&mut agent.summary.latency_histogram);
    }
    for interval in &mut r.intervals {
        scale(&mut interval.global.latency_histogram);
        for figures in interval.regions.values_mut() {
            scale(&mut figures.latency_histogram);
        }
    }
    r
}

fn check_csv(report: &RunReport, lines: &[String]) {
    assert_eq!(
        lines[0],
        "interval,start_s,end_s,scope,requests,successes,errors,rps,p50_us,p90_us,p99_us,p99_9_us,max_us,new_connections_per_s"
    );
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows.len(),
        report.intervals.len() * (1 + report.regions.len()),
        "one row per interval and scope"
    );
    for row in &rows {
        let index: usize = row[0].parse().expect("interval index");
        let interval = &report.intervals[index];
        let figures = match row[3] {
            "global" => &interval.global,
            region => &interval.regions[region],
        };
        assert_eq!(row[4], figures.requests.to_string(), "{row:?}");
        assert_eq!(row[10], figures.latency_us.p99.to_string(), "{row:?}");
        assert_eq!(
            row[13],
            format!("{:.3}", figures.new_connections_per_second),
            "{row:?}"
        );
    }
}

/// Each interval log's (count, p99) per interval, as the crate reads it.
fn read_hlog(path: &Path, start_unix_s: f64) -> Vec<(u64, u64)> {
    let bytes = std::fs::read(path).expect("read hlog");
    let mut out = vec![];
    let mut base = None;
    for entry in IntervalLogIterator::new(&bytes) {
        match entry.unwrap_or_else(|e| panic!("{}: {e:?}", path.display())) {
            LogEntry::BaseTime(t) => base = Some(t.as_secs_f64()),
            LogEntry::StartTime(t) => {
                assert!((t.as_secs_f64() - start_unix_s).abs() < 0.002)
            }
            LogEntry::Interval(i) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .expect("base64");
                let h: hdrhistogram::Histogram<u64> = Deserializer::new()
                    .deserialize(&mut &raw[..])
                    .expect("V2 histogram");
                let p99 = if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.99)
                };
                out.push((h.len(), p99));
            }
        }
    }
    let base = base.expect("a BaseTime header");
    assert!(
        (base - start_unix_s).abs() < 0.002,
        "BaseTime is the run's start"
    );
    out
}

/// What the report says each log should hold: (count, p99) per interval.
fn expected_hlog(report: &RunReport, region: Option<&str>) -> Vec<(u64, u64)> {
    report
        .intervals
        .iter()
        .map(|i| {
            let f = match region {
                None => Some(&i.global),
                Some(name) => i.regions.get(name),
            };
            f.map_or((0, 0), |f| (f.successes, f.latency_us.p99))
        })
        .collect()
}

/// Reads every log in `dir` with the Python HdrHistogram package and
/// prints, per file, each interval's [count, p99, start ms]. The p99 uses
/// the Rust crate's definition (the first value whose cumulative count
/// reaches ceil(0.99·n)); the Python package's own rounds instead.
const PYTHON_READER: &str = r#"
import json, math, os, sys
try:
    from hdrh.histogram import HdrHistogram
    from hdrh.log import HistogramLogReader
except ImportError:
    print("MISSING")
    sys.exit(0)
out = {}
for name in sorted(os.listdir(sys.argv[1])):
    reader = HistogramLogReader(os.path.join(sys.argv[1], name), HdrHistogram(1, 3600000000, 3))
    rows = []
    while True:
        h = reader.get_next_interval_histogram()
        if h is None:
            break
        total = h.get_total_count()
        p99 = 0
        if total:
            target = max(1, math.ceil(0.99 * total))
            for item in h.get_recorded_iterator():
                if item.total_count_to_this_value >= target:
                    p99 = h.get_highest_equivalent_value(item.value_iterated_to)
                    break
        rows.append([total, p99, h.get_start_time_stamp()])
    reader.close()
    out[name] = rows
print(json.dumps(out))
"#;

fn check_hlog_with_python(report: &RunReport, dir: &Path, start_unix_s: f64) {
    let required = std::env::var("STAMPEDE_REQUIRE_PYTHON_HDRH").as_deref() == Ok("1");
    let mut command = Command::new("python3");
    command.args(["-c", PYTHON_READER, path_str(dir)]);
    let mut python = match std::process::Command::new("python3")
        .arg("--version")
        .output()
    {
        Ok(_) => spawn_command("python3 hdrh reader", command),
        Err(e) => {
            assert!(
                !required,
                "STAMPEDE_REQUIRE_PYTHON_HDRH=1 but no python3: {e}"
            );
            println!("SKIPPED: no python3; .hlog files not checked with HdrHistogram_py");
            return;
        }
    };
    let (status, stderr) = python.wait(Duration::from_secs(120));
    let stdout = python.remaining_stdout().join("\n");
    assert!(status.success(), "python reader failed:\n{stderr}");
    if stdout.trim() == "MISSING" {
        assert!(
            !required,
            "STAMPEDE_REQUIRE_PYTHON_HDRH=1 but the Python module hdrh is missing (pip install hdrhistogram)"
        );
        println!(
            "SKIPPED: Python package hdrhistogram not installed (pip install hdrhistogram); .hlog files not checked with it"
        );
        return;
    }
    let read: serde_json::Value = serde_json::from_str(&stdout).expect("python prints JSON");
    let mut files = vec![("global.hlog".to_owned(), None)];
    for r in &report.regions {
        files.push((format!("region-{}.hlog", r.name), Some(r.name.as_str())));
    }
    for (file, region) in files {
        let rows = read[&file]
            .as_array()
            .unwrap_or_else(|| panic!("python read no {file}: {stdout}"));
        let expected = expected_hlog(report, region);
        assert_eq!(rows.len(), expected.len(), "{file}: intervals");
        for ((row, (count, p99)), interval) in rows.iter().zip(&expected).zip(&report.intervals) {
            assert_eq!(
                row[0].as_u64(),
                Some(*count),
                "{file} interval {}",
                interval.index
            );
            assert_eq!(
                row[1].as_u64(),
                Some(*p99),
                "{file} interval {}",
                interval.index
            );
            let start_ms = row[2].as_f64().expect("start ms");
            let expected_ms = (start_unix_s + interval.start_s) * 1000.0;
            assert!(
                (start_ms - expected_ms).abs() < 2.0,
                "{file} interval {}: starts at {start_ms} ms, expected {expected_ms}",
                interval.index
            );
        }
    }
}

#[test]
fn report_formats_and_compare_through_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let at = |name: &str| -> PathBuf { dir.path().join(name) };
    let (json, page) = (at("run.json"), at("run.html"));

    // A run writes its HTML report next to the JSON one.
    let (code, stdout, stderr) = stampede(&[
        "demo",
        "--duration",
        "2s",
        "--rate",
        "300",
        "--report",
        path_str(&json),
        "--html",
        path_str(&page),
    ]);
    assert_eq!(code, Some(0), "demo failed:\n{stderr}");
    assert!(
        stdout
            .iter()
            .any(|l| l == &format!("html report: {}", page.display())),
        "{stdout:?}"
    );
    let html = std::fs::read_to_string(&page).expect("the demo wrote its HTML report");
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 6);
    let report = report::read(&json).expect("the demo wrote its JSON report");

    // CSV: to stdout, and the same to a file.
    let (code, csv, stderr) = stampede(&["report", path_str(&json), "--format", "csv"]);
    assert_eq!(code, Some(0), "{stderr}");
    check_csv(&report, &csv);
    let csv_file = at("run.csv");
    let (code, _, stderr) = stampede(&[
        "report",
        path_str(&json),
        "--format",
        "csv",
        "--output",
        path_str(&csv_file),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let written = std::fs::read_to_string(&csv_file).expect("csv file");
    assert!(written.contains("\r\n"), "RFC 4180 line ends");
    assert_eq!(written.lines().collect::<Vec<_>>(), csv);

    // --json stays an alias of --format json.
    let (_, alias, _) = stampede(&["report", path_str(&json), "--json"]);
    let (_, long, _) = stampede(&["report", path_str(&json), "--format", "json"]);
    assert_eq!(alias, long);
    let parsed: RunReport = serde_json::from_str(&long.join("\n")).expect("JSON report");
    assert_eq!(parsed.run_id, report.run_id);
    let (code, table, _) = stampede(&["report", path_str(&json)]);
    assert_eq!(code, Some(0));
    assert!(table.iter().any(|l| l.starts_with("global")), "{table:?}");

    // html and hlog write files: without --output they refuse, saying so.
    for format in ["html", "hlog"] {
        let (code, _, stderr) = stampede(&["report", path_str(&json), "--format", format]);
        assert_eq!(code, Some(1), "{format} without --output");
        assert!(stderr.contains("--output"), "{format}: {stderr}");
    }
    let page2 = at("again.html");
    let (code, _, stderr) = stampede(&[
        "report",
        path_str(&json),
        "--format",
        "html",
        "-o",
        path_str(&page2),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let again = std::fs::read_to_string(&page2).expect("html file");
    assert_eq!(again.matches("<svg class=\"chart\"").count(), 6);

    // hlog: one global log and one per region, readable by two readers.
    let logs = at("logs");
    let (code, stdout, stderr) = stampede(&[
        "report",
        path_str(&json),
        "--format",
        "hlog",
        "--output",
        path_str(&logs),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.len(), 1 + report.regions.len(), "{stdout:?}");
    let start = humantime::parse_rfc3339_weak(&report.started_at)
        .expect("started_at")
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs_f64();
    assert_eq!(
        read_hlog(&logs.join("global.hlog"), start),
        expected_hlog(&report, None)
    );
    for r in &report.regions {
        let file = logs.join(format!("region-{}.hlog", r.name));
        assert_eq!(
            read_hlog(&file, start),
            expected_hlog(&report, Some(&r.name)),
            "{}",
            r.name
        );
    }
    check_hlog_with_python(&report, &logs, start);

    // compare: a run against itself changes nothing and passes the gate.
    let (code, table, stderr) = stampede(&[
        "compare",
        path_str(&json),
        path_str(&json),
        "--fail-on-regression",
        "1",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(table.iter().any(|l| l.starts_with("global")), "{table:?}");
    assert!(!table.iter().any(|l| l.contains("worse")), "{table:?}");

    // A 30% slower copy fails a 10% gate, naming the figures; passes a 50% one.
    let slow = at("slow.json");
    report::write(&slowed(&report, 1.3), &slow).expect("write slow copy");
    let (code, table, stderr) = stampede(&[
        "compare",
        path_str(&json),
        path_str(&slow),
        "--fail-on-regression",
        "10",
    ]);
    assert_eq!(code, Some(1), "a regression must exit 1:\n{stderr}");
    assert!(stderr.contains("regression beyond 10%"), "{stderr}");
    for figure in ["global p50 +", "global p99 +"] {
        assert!(stderr.contains(figure), "{figure} not named in: {stderr}");
    }
    for r in &report.regions {
        assert!(stderr.contains(&format!("{} p99 +", r.name)), "{stderr}");
    }
    assert!(table.iter().any(|l| l.contains("REGRESSION")), "{table:?}");
    let (code, _, stderr) = stampede(&[
        "compare",
        path_str(&json),
        path_str(&slow),
        "--fail-on-regression",
        "50",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, out, stderr) = stampede(&[
        "compare",
        path_str(&json),
        path_str(&slow),
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "no gate, no failure: {stderr}");
    let comparison: serde_json::Value =
        serde_json::from_str(&out.join("\n")).expect("compare --format json");
    let global_p99 = &comparison["scopes"][0]["figures"][4];
    assert_eq!(global_p99["figure"], "p99");
    assert_eq!(global_p99["direction"], "worse");
    let relative = global_p99["relative"].as_f64().expect("relative change");
    assert!((relative - 0.3).abs() < 0.01, "{relative}");
}
