//! A real link cut: the agent runs in its own network namespace, joined to
//! the host by a veth pair, and its traffic to the coordinator is dropped
//! with iptables inside the namespace (no RST, no FIN), while its traffic to
//! the target still flows. The agent must stop loading the target on its
//! own (measured at the target), and the coordinator must mark it lost.
//!
//! Needs root and iptables. Without them the test says so and passes, unless
//! `STAMPEDE_REQUIRE_NETNS=1` (CI sets it), when it fails.

mod support;

use stampede_coordinator::report::model::{RunReport, RunStatus};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Proc, served, spawn, spawn_command};

/// A namespace and veth pair, removed on drop.
struct Namespace {
    name: String,
    host_if: String,
    host_ip: String,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Namespace {
    fn create() -> Result<Self, String> {
        let id = std::process::id() % 100_000;
        let k = id % 250 + 1;
        let ns = Namespace {
            name: format!("stp{id}"),
            host_if: format!("stph{id}"),
            host_ip: format!("10.231.{k}.1"),
        };
        let peer = format!("stpa{id}");
        let agent_ip = format!("10.231.{k}.2/30");
        let host_cidr = format!("{}/30", ns.host_ip);
        run(&["ip", "netns", "add", &ns.name])?;
        run(&[
            "ip",
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        run(&["ip", "link", "set", &peer, "netns", &ns.name])?;
        run(&["ip", "addr", "add", &host_cidr, "dev", &ns.host_if])?;
        run(&["ip", "link", "set", &ns.host_if, "up"])?;
        ns.exec(&["ip", "addr", "add", &agent_ip, "dev", &peer])?;
        ns.exec(&["ip", "link", "set", &peer, "up"])?;
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Drops everything between the agent and `port` on the host, both
    /// ways, silently.
    fn cut(&self, port: u16) -> Result<(), String> {
        let port = port.to_string();
        self.exec(&[
            "iptables",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            &self.host_ip,
            "--dport",
            &port,
            "-j",
            "DROP",
        ])?;
        self.exec(&[
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "-s",
            &self.host_ip,
            "--sport",
            &port,
            "-j",
            "DROP",
        ])
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = run(&["ip", "link", "del", &self.host_if]);
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

fn namespaces_available() -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        return Err("not root".into());
    }
    for tool in ["ip", "iptables"] {
        Command::new(tool)
            .arg("--version")
            .output()
            .map_err(|e| format!("no {tool}: {e}"))?;
    }
    Ok(())
}

fn address_after(p: &Proc, prefix: &str) -> SocketAddr {
    let text = p.line_after(prefix, Duration::from_secs(30));
    text.trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn a_link_cut_in_a_network_namespace_stops_the_agent_and_loses_it() {
    if let Err(why) = namespaces_available() {
        assert!(
            std::env::var("STAMPEDE_REQUIRE_NETNS").as_deref() != Ok("1"),
            "network namespaces are required here but unavailable: {why}"
        );
        eprintln!("skipped: network namespaces unavailable ({why})");
        return;
    }
    let ns = Namespace::create().expect("namespace set up");
    let listen = format!("{}:0", ns.host_ip);

    let mut target = spawn("target", &["target", "--listen", &listen]);
    let target_addr = address_after(&target, "target listening on ");

    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("cut.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: cut\ntarget:\n  url: http://{target_addr}/\n\
             load:\n  model: open\n  rate: 100\n  connections: 10\n  duration: 60s\n  interval: 1s\n\
             regions:\n  - name: local\nstart_delay: 500ms\nagent_wait_timeout: 60s\n\
             agent_loss_timeout: 5s\n"
        ),
    )
    .expect("write scenario");
    let report_path = dir.path().join("report.json");
    let mut coordinator = spawn(
        "coordinator",
        &[
            "coordinator",
            "--scenario",
            scenario.to_str().expect("utf-8"),
            "--listen",
            &listen,
            "--insecure-plaintext",
            "--report",
            report_path.to_str().expect("utf-8"),
            "-q",
        ],
    );
    let coordinator_addr = address_after(&coordinator, "coordinator listening on ");

    let mut agent_command = Command::new("ip");
    agent_command
        .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_stampede")])
        .args(["agent", "--coordinator"])
        .arg(format!("http://{coordinator_addr}"))
        .args(["--region", "local", "--threads", "1", "--once"])
        .args(["--insecure-plaintext", "--allow-target", "10.231.0.0/16"])
        .env("STAMPEDE_LOG", "info");
    let mut agent = spawn_command("agent in its namespace", agent_command);

    // Two seconds of load through the veth, then cut the coordinator's link.
    let deadline = Instant::now() + Duration::from_secs(60);
    while served(target_addr)["served"].as_u64().unwrap_or(0) < 200 {
        assert!(Instant::now() < deadline, "no load reached the target");
        std::thread::sleep(Duration::from_millis(50));
    }
    ns.cut(coordinator_addr.port()).expect("link cut");
    let cut_at = Instant::now();

    // The target still answers the agent: only the agent's own decision
    // stops the load.
    let stopped_after = support::load_stopped_after(target_addr, cut_at, Duration::from_secs(40));
    eprintln!("load stopped {stopped_after:?} after the cut");
    assert!(
        stopped_after <= Duration::from_secs(6),
        "the agent loaded the target {stopped_after:?} after losing its coordinator"
    );

    // The coordinator lost its only agent: it writes a partial report.
    let (status, stderr) = coordinator.wait(Duration::from_secs(60));
    assert!(status.success(), "coordinator failed: {stderr}");
    agent.stop();
    target.stop();
    let report: RunReport =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report written"))
            .expect("report parses");
    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!(report.agents.len(), 1);
    assert_eq!(report.agents[0].state, "lost");
    assert!(
        report.agents[0].summary.requests >= 100,
        "what it reported is kept"
    );
    assert!(
        report
            .faults
            .iter()
            .any(|f| f.kind == "agent_lost" || f.kind == "agent_silent"),
        "{:?}",
        report.faults
    );
}
