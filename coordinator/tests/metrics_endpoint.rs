//! `/metrics` of a real `stampede coordinator` process, scraped while it
//! runs, and its push to a Pushgateway when it ends: both parsed with the
//! Prometheus project's own Python parser (`prometheus_client`), and their
//! counters and quantiles checked against the run's report.
//!
//! The parse needs Python's `prometheus_client`; without it the test
//! skips (with a message) unless `STAMPEDE_REQUIRE_PYTHON_PROMETHEUS=1`
//! (CI sets it).

mod support;

use stampede_coordinator::report::model::{RunReport, ScopeSummary};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{
    PLAINTEXT, PLAINTEXT_LOOPBACK_AGENT, listening_on, spawn_agent, spawn_command,
    spawn_coordinator, start_target,
};

/// Reads Prometheus text pages (a JSON list in the file named by argv[1]) with the reference
/// parser; prints each page's samples as [name, labels, value].
const PYTHON_PARSER: &str = r#"
import json, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("MISSING")
    sys.exit(0)
with open(sys.argv[1]) as f:
    pages = json.load(f)
out = []
for page in pages:
    samples = []
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            samples.append([s.name, s.labels, s.value])
    out.append(samples)
print(json.dumps(out))
"#;

/// One sample: its name, labels and value.
type Sample = (String, BTreeMap<String, String>, f64);

/// One parsed page.
struct Page(Vec<Sample>);

impl Page {
    /// The value of the one sample named `name` whose labels include `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
                    && (labels.iter().any(|(k, _)| *k == "region") || !l.contains_key("region"))
            })
            .map(|(_, _, v)| *v)
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
        found.first().copied()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }
}

/// Parses `pages` with Python's prometheus_client; `None` when it is not
/// installed (and not required).
fn parse(pages: &[String]) -> Option<Vec<Page>> {
    let required = std::env::var("STAMPEDE_REQUIRE_PYTHON_PROMETHEUS").as_deref() == Ok("1");
    let input = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(input.path(), serde_json::to_string(pages).expect("json")).expect("write");
    let mut command = Command::new("python3");
    command.args(["-c", PYTHON_PARSER]).arg(input.path());
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(
            !required,
            "STAMPEDE_REQUIRE_PYTHON_PROMETHEUS=1 but no python3"
        );
        println!("SKIPPED: no python3; the metrics were not parsed");
        return None;
    }
    let mut python = spawn_command("python3 prometheus parser", command);
    let (status, stderr) = python.wait(Duration::from_secs(60));
    let stdout = python.remaining_stdout().join("\n");
    assert!(status.success(), "the parser failed:\n{stderr}");
    if stdout.trim() == "MISSING" {
        assert!(
            !required,
            "STAMPEDE_REQUIRE_PYTHON_PROMETHEUS=1 but the Python package prometheus_client is missing (pip install prometheus-client)"
        );
        println!(
            "SKIPPED: Python package prometheus_client not installed (pip install prometheus-client); the metrics were not parsed"
        );
        return None;
    }
    let parsed: Vec<Vec<Sample>> =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    Some(parsed.into_iter().map(Page).collect())
}

/// An HTTP/1.1 exchange on a fresh connection: status line, headers, body.
fn http(addr: &str, request: &str) -> std::io::Result<(String, String, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok((status.to_owned(), headers.to_owned(), body.to_owned()))
}

fn scrape(addr: &str) -> std::io::Result<String> {
    let (status, _, body) = http(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )?;
    assert!(status.contains(" 200 "), "{status}");
    Ok(body)
}

/// What a tiny in-test Pushgateway was sent.
struct Pushed {
    method: String,
    path: String,
    content_type: String,
    body: String,
}

/// Accepts one request, answers 200, and hands over what it was sent.
fn tiny_pushgateway() -> (SocketAddr, mpsc::Receiver<Pushed>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("request line");
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let (mut length, mut content_type) = (0, String::new());
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).expect("header");
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().expect("length"),
                    "content-type" => content_type = value.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        let _ = reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let _ = tx.send(Pushed {
            method,
            path,
            content_type,
            body: String::from_utf8(body).expect("utf-8"),
        });
    });
    (addr, rx)
}

/// A scope's labels: `scope="global"`, or `scope="region"` and its name.
fn scope(region: Option<&str>) -> Vec<(&str, &str)> {
    match region {
        None => vec![("scope", "global")],
        Some(name) => vec![("scope", "region"), ("region", name)],
    }
}

fn summary<'a>(report: &'a RunReport, region: Option<&str>) -> &'a ScopeSummary {
    match region {
        None => &report.global,
        Some(name) => {
            &report
                .regions
                .iter()
                .find(|r| r.name == name)
                .expect("region")
                .summary
        }
    }
}

#[test]
fn metrics_scraped_during_a_run_and_pushed_after_it_agree_with_the_report() {
    let (mut target, target_addr) = start_target(&["--region-delay", "eu-west=20ms"]);
    let (gateway, pushed) = tiny_pushgateway();
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("watched.yaml");
    std::fs::write(
        &scenario,
        format!(
            r#"name: watched
target:
  url: http://{target_addr}/
  region_urls:
    eu-west: http://{target_addr}/region/eu-west
load:
  model: open
  connections: 20
  stages:
    - kind: warmup
      duration: 1s
      rate: 100
    - kind: steady
      duration: 4s
      rate: 200
regions:
  - name: us-east
  - name: eu-west
start_delay: 500ms
thresholds:
  - p99 < 5s
"#
        ),
    )
    .expect("write scenario");
    let report_path = dir.path().join("report.json");
    let mut coordinator = spawn_coordinator(
        "coordinator",
        &scenario,
        PLAINTEXT,
        &[
            "--report",
            report_path.to_str().expect("utf-8 path"),
            "--metrics-listen",
            "127.0.0.1:0",
            "--pushgateway",
            &format!("http://{gateway}"),
        ],
    );
    let url = format!("http://{}", listening_on(&coordinator));
    let metrics_url = coordinator.line_after("metrics listening on ", Duration::from_secs(30));
    let metrics = metrics_url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .expect("http://ADDR/metrics")
        .to_owned();

    // Before any agent: waiting, and the page is served as the text format.
    let (status, headers, body) = http(
        &metrics,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .expect("scrape");
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    assert!(
        body.contains("stampede_run_state{state=\"waiting\"} 1"),
        "{body}"
    );
    let (status, _, _) = http(
        &metrics,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .expect("get /");
    assert!(status.contains(" 404 "), "{status}");

    let mut agents: Vec<_> = ["us-east", "eu-west"]
        .iter()
        .map(|region| spawn_agent(region, &url, region, PLAINTEXT_LOOPBACK_AGENT, &[]))
        .collect();

    // Scrape until the run has closed a few measured intervals, or the
    // coordinator is gone. The pause only spaces the polls out: what the
    // test waits for is a condition on the page.
    let mut pages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut measured_seen = 0;
    while Instant::now() < deadline && measured_seen < 3 {
        let Ok(page) = scrape(&metrics) else { break };
        if page.contains("stampede_run_state{state=\"running\"} 1")
            && page.contains("stampede_interval_warmup 0")
        {
            let index = page
                .lines()
                .find_map(|l| l.strip_prefix("stampede_interval_index "))
                .map(str::to_owned);
            let last_index = pages.last().and_then(|p: &String| {
                p.lines()
                    .find_map(|l| l.strip_prefix("stampede_interval_index "))
                    .map(str::to_owned)
            });
            if index != last_index {
                measured_seen += 1;
            }
            pages.push(page);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, stderr) = coordinator.wait(Duration::from_secs(60));
    for agent in &mut agents {
        let _ = agent.wait(Duration::from_secs(30));
    }
    target.stop();
    assert!(status.success(), "coordinator: {status}\n{stderr}");
    assert!(
        stderr.contains("pushed the run's metrics"),
        "stderr: {stderr}"
    );
    assert!(
        measured_seen >= 2,
        "scraped {measured_seen} measured intervals while the run went"
    );
    let report: RunReport =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report written"))
            .expect("report parses");
    assert!(
        report.intervals.iter().any(|i| i.warmup),
        "a warm-up interval"
    );

    let push = pushed
        .recv_timeout(Duration::from_secs(10))
        .expect("the coordinator pushed its metrics");
    assert_eq!(push.method, "PUT");
    assert_eq!(
        push.path,
        format!("/metrics/job/stampede/run_id/{}", report.run_id)
    );
    assert!(push.content_type.starts_with("text/plain; version=0.0.4"));

    let mut texts = pages.clone();
    texts.push(push.body.clone());
    let Some(mut parsed) = parse(&texts) else {
        return;
    };
    let final_page = parsed.pop().expect("the pushed page");
    let regions = [None, Some("us-east"), Some("eu-west")];

    // While it ran: the counters hold exactly the measured intervals closed
    // so far (warm-up left out, as in the report), the regions add up to
    // the global series, and the interval gauges are the last interval's.
    for page in &parsed {
        assert_eq!(
            page.value("stampede_run_state", &[("state", "running")]),
            1.0
        );
        let last = page.value("stampede_interval_index", &[]) as u32;
        let closed: Vec<_> = report
            .intervals
            .iter()
            .filter(|i| i.index <= last && !i.warmup)
            .collect();
        for region in regions {
            let labels = scope(region);
            let expected: u64 = closed
                .iter()
                .map(|i| match region {
                    None => i.global.requests,
                    Some(name) => i.regions.get(name).map_or(0, |f| f.requests),
                })
                .sum();
            assert_eq!(
                page.value("stampede_requests_total", &labels),
                expected as f64,
                "{region:?} requests after interval {last}"
            );
            let interval = report
                .intervals
                .iter()
                .find(|i| i.index == last)
                .expect("the scraped interval is in the report");
            let figures = match region {
                None => &interval.global,
                Some(name) => &interval.regions[name],
            };
            let rps = page.value("stampede_interval_requests_per_second", &labels);
            assert!(
                (rps - figures.rps).abs() <= 1e-9 * figures.rps.max(1.0),
                "{region:?} interval {last}: rps {rps} vs {}",
                figures.rps
            );
            let mut p99_labels = labels.clone();
            p99_labels.push(("quantile", "0.99"));
            assert_eq!(
                page.value("stampede_interval_latency_seconds", &p99_labels),
                figures.latency_us.p99 as f64 / 1e6,
                "{region:?} interval {last}: p99"
            );
        }
        let by_region: f64 = ["us-east", "eu-west"]
            .iter()
            .map(|r| page.value("stampede_requests_total", &scope(Some(r))))
            .sum();
        assert_eq!(
            by_region,
            page.value("stampede_requests_total", &scope(None))
        );
        assert_eq!(
            page.value("stampede_agents_connected", &[("region", "eu-west")]),
            1.0
        );
        assert!(
            page.get("stampede_stage_info", &[("kind", "steady")])
                .is_some()
        );
    }

    // The push is the finished run: its counters and quantiles are the
    // report's.
    assert_eq!(
        final_page.value("stampede_run_state", &[("state", "finished")]),
        1.0
    );
    assert_eq!(
        final_page.value("stampede_run_info", &[("run_id", &report.run_id)]),
        1.0
    );
    for region in regions {
        let s = summary(&report, region);
        let labels = scope(region);
        assert_eq!(
            final_page.value("stampede_requests_total", &labels),
            s.requests as f64,
            "{region:?}"
        );
        assert_eq!(
            final_page.value("stampede_connections_opened_total", &labels),
            s.phases.as_ref().map_or(0, |p| p.new_connections) as f64,
            "{region:?}"
        );
        assert!(
            !s.status_codes.is_empty(),
            "{region:?}: responses had codes"
        );
        for (code, n) in &s.status_codes {
            let mut by_code = labels.clone();
            by_code.push(("code", code));
            assert_eq!(
                final_page.value("stampede_responses_total", &by_code),
                *n as f64,
                "{region:?} {code}"
            );
        }
        let mut timeouts = labels.clone();
        timeouts.push(("class", "timeout"));
        assert_eq!(
            final_page.value("stampede_errors_total", &timeouts),
            s.errors.timeout as f64
        );
        let mut p99 = labels.clone();
        p99.push(("quantile", "0.99"));
        assert_eq!(
            final_page.value("stampede_run_latency_seconds", &p99),
            s.latency_us.p99 as f64 / 1e6
        );
    }
    assert!(report.global.requests > 0);
    assert_eq!(
        final_page.value("stampede_threshold_passed", &[("threshold", "p99 < 5s")]),
        1.0
    );
}
