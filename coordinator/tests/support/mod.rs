//! Helpers for tests that run `stampede` (or another program, such as a
//! browser) as separate OS processes.
#![allow(dead_code)]

pub mod certs;
pub mod hand;
pub mod standing;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A child process that is killed if the test ends before it does.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// Starts `stampede` with `args`, capturing stdout line by line.
pub fn spawn(name: &str, args: &[&str]) -> Proc {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stampede"));
    command.args(args).env("STAMPEDE_LOG", "info");
    spawn_command(name, command)
}

/// Starts `command`, capturing stdout line by line and stderr whole.
pub fn spawn_command(name: &str, mut command: Command) -> Proc {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    Proc {
        name: name.to_owned(),
        child: Some(child),
        lines,
        stderr: Some(stderr),
    }
}

impl Proc {
    /// Waits for a stdout line starting with `prefix`; returns the rest.
    pub fn line_after(&self, prefix: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(_) => panic!(
                    "{}: no line starting with {prefix:?} within {within:?}",
                    self.name
                ),
            }
        }
    }

    /// Waits for the process to exit (killing it after `within`); returns
    /// its status and everything it wrote to stderr.
    pub fn wait(&mut self, within: Duration) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("not yet waited");
        let (tx, rx) = mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(within) {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("{} did not exit within {within:?}", self.name);
            }
        };
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status, stderr)
    }

    /// Every stdout line not yet consumed (call after [`Proc::wait`]: the
    /// reader thread has then seen the end of the output).
    pub fn remaining_stdout(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            lines.push(line);
        }
        lines
    }

    /// The process id, while it runs (to send it a signal).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Security flags for a coordinator that serves plain text (tests on loopback).
pub const PLAINTEXT: &[&str] = &["--insecure-plaintext"];
/// Security flags for an agent that dials in plain text and loads loopback
/// targets only.
pub const PLAINTEXT_LOOPBACK_AGENT: &[&str] =
    &["--insecure-plaintext", "--allow-target", "127.0.0.0/8"];

/// Starts `stampede coordinator` for `scenario` on a free loopback port,
/// with its `security` flags and any `extra` ones.
pub fn spawn_coordinator(name: &str, scenario: &Path, security: &[&str], extra: &[&str]) -> Proc {
    let mut args = vec![
        "coordinator",
        "--scenario",
        scenario.to_str().expect("utf-8 path"),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(security);
    args.extend_from_slice(extra);
    spawn(name, &args)
}

/// Waits for a coordinator to listen; returns its `host:port`.
pub fn listening_on(coordinator: &Proc) -> String {
    coordinator.line_after("coordinator listening on ", Duration::from_secs(30))
}

/// Starts `stampede agent --once --threads 1` for `region`, dialing
/// `coordinator_url`, with its `security` flags and any `extra` ones.
pub fn spawn_agent(
    name: &str,
    coordinator_url: &str,
    region: &str,
    security: &[&str],
    extra: &[&str],
) -> Proc {
    let mut args = vec![
        "agent",
        "--coordinator",
        coordinator_url,
        "--region",
        region,
        "--threads",
        "1",
        "--once",
    ];
    args.extend_from_slice(security);
    args.extend_from_slice(extra);
    spawn(name, &args)
}

/// Starts the built-in target on a free loopback port; returns it and its address.
pub fn start_target(args: &[&str]) -> (Proc, SocketAddr) {
    let mut all = vec!["target", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let target = spawn("target", &all);
    let url = target.line_after("target listening on http://", Duration::from_secs(30));
    let addr = url.parse().expect("target prints its address");
    (target, addr)
}

/// The target's own count of served requests (GET /__stampede/stats).
pub fn served(target: SocketAddr) -> serde_json::Value {
    let mut stream = TcpStream::connect(target).expect("connect to target");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"GET /__stampede/stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let body = response.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("stats body {body:?}: {e}"))
}

/// The built-in target running inside the test process.
pub struct InProcessTarget {
    pub url: url::Url,
    pub stats: stampede_target::TargetStats,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), stampede_target::TargetError>>,
}

impl InProcessTarget {
    pub async fn start(config: stampede_target::TargetConfig) -> Self {
        let target = stampede_target::TargetServer::bind(config)
            .await
            .expect("target binds");
        let url = url::Url::parse(&format!("{}://{}/", target.scheme(), target.local_addr()))
            .expect("url");
        let stats = target.stats();
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(target.run(stop.clone()));
        Self {
            url,
            stats,
            stop,
            task,
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// A one-region scenario aimed at `url` with the given load.
pub fn one_region_scenario(
    name: &str,
    url: url::Url,
    load: stampede_coordinator::scenario::Load,
) -> stampede_coordinator::scenario::Scenario {
    use stampede_coordinator::scenario::{RegionSpec, Scenario, Share, Target};
    Scenario {
        name: name.into(),
        target: Target {
            method: "GET".into(),
            url,
            headers: vec![],
            body: vec![],
            timeout: Duration::from_secs(5),
            region_urls: Default::default(),
            transport: Default::default(),
        },
        load,
        regions: vec![RegionSpec {
            name: "local".into(),
            agents: 1,
            share: Share::Weight(1.0),
        }],
        start_delay: Duration::from_millis(300),
        agent_wait_timeout: Duration::from_secs(10),
        faults: Default::default(),
        topology: None,
        thresholds: vec![],
        requests: vec![],
        data: None,
        repeat: 1,
        llm: None,
        grpc: None,
        search: None,
        cost: None,
    }
}

/// `stampede bench`-style options: GET `url`, one worker thread, 5 s timeout.
pub fn bench_options(
    url: url::Url,
    connections: u32,
    duration: Duration,
    rate: Option<f64>,
    arrival: stampede_coordinator::scenario::Arrival,
) -> stampede_coordinator::bench::BenchOptions {
    stampede_coordinator::bench::BenchOptions {
        url,
        method: "GET".into(),
        headers: vec![],
        body: vec![],
        connections,
        duration,
        rate,
        arrival,
        threads: 1,
        timeout: Duration::from_secs(5),
        transport: Default::default(),
    }
}

/// Starts one in-process agent (one worker thread, `--once`) per entry of
/// `regions`, dialing `coordinator_url`.
pub fn start_agents(
    coordinator_url: &str,
    regions: &[&str],
) -> Vec<tokio::task::JoinHandle<Result<(), stampede_agent::SessionError>>> {
    regions
        .iter()
        .map(|region| {
            let mut agent = stampede_agent::AgentConfig::new(coordinator_url.to_owned(), *region);
            agent.once = true;
            agent.engine.threads = 1;
            tokio::spawn(stampede_agent::run_agent(
                agent,
                tokio_util::sync::CancellationToken::new(),
            ))
        })
        .collect()
}

/// Runs `scenario` on an in-process coordinator with one in-process agent
/// (one worker thread, one run) per entry of `regions`.
pub async fn run_with_agents(
    scenario: stampede_coordinator::scenario::Scenario,
    regions: &[&str],
) -> stampede_coordinator::report::model::RunReport {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let agents = start_agents(&url, regions);
    let report = stampede_coordinator::cluster::run_coordinator(
        scenario,
        listener,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("runs");
    for agent in agents {
        let _ = agent.await;
    }
    report
}

/// Runs the capacity search of `scenario` on an in-process coordinator with
/// one in-process agent per entry of `regions` (kept for every probe).
pub async fn search_with_agents(
    scenario: stampede_coordinator::scenario::Scenario,
    regions: &[&str],
) -> stampede_coordinator::search::SearchRun {
    let spec = scenario.search.clone().expect("a search scenario");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let agents = start_agents(&url, regions);
    let search = stampede_coordinator::cluster::run_search_with(
        scenario,
        spec,
        listener,
        Default::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("the coordinator serves");
    for agent in agents {
        let _ = agent.await;
    }
    search
}

/// The built-in KServe v2 gRPC mock running inside the test process.
pub struct InProcessKserve {
    pub url: url::Url,
    pub stats: stampede_target::KserveStats,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), stampede_target::TargetError>>,
}

impl InProcessKserve {
    pub async fn start(config: stampede_target::KserveConfig) -> Self {
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let server = stampede_target::KserveServer::bind(config)
            .await
            .expect("mock binds");
        let url = url::Url::parse(&format!("{scheme}://{}/", server.local_addr())).expect("url");
        let stats = server.stats();
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(server.run(stop.clone()));
        Self {
            url,
            stats,
            stop,
            task,
        }
    }

    /// A mock on loopback, port 0, no delay, nothing refused.
    pub fn config() -> stampede_target::KserveConfig {
        stampede_target::KserveConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            default_delay: Default::default(),
            region_delays: Default::default(),
            unavailable_share: 0.0,
            tls: None,
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// How long after `since` the target's served count last moved: polls it
/// until it has stood still for 2 s (bounded by `within`). The agents'
/// own decision to stop, measured where the load lands.
pub fn load_stopped_after(
    target: SocketAddr,
    since: std::time::Instant,
    within: Duration,
) -> Duration {
    let count = || served(target)["served"].as_u64().unwrap_or(0);
    let mut last = count();
    let mut last_change = std::time::Instant::now();
    while last_change.elapsed() < Duration::from_secs(2) {
        assert!(since.elapsed() < within, "the load never stopped");
        std::thread::sleep(Duration::from_millis(100));
        let now = count();
        if now != last {
            last = now;
            last_change = std::time::Instant::now();
        }
    }
    last_change.saturating_duration_since(since)
}

/// The report, as JSON, matches docs/report.schema.json.
pub fn assert_schema_valid(report: &stampede_coordinator::report::model::RunReport) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("JSON");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let instance = serde_json::to_value(report).expect("report serializes");
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("at {}: {e}", e.instance_path().as_str()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
