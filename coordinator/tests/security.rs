//! Keeping strangers out, with separate OS processes on loopback: mTLS with
//! certificates made at test time, the shared token, plain text only by
//! flag, and the agent's target allowlist.

mod support;

use stampede_coordinator::report::model::RunReport;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::certs::TestCa;
use support::{
    PLAINTEXT, PLAINTEXT_LOOPBACK_AGENT, listening_on, served, spawn, spawn_agent,
    spawn_coordinator, start_target,
};

/// One region, one agent, 100 req/s for 2 s: 200 requests when it runs.
fn scenario(dir: &Path, target: SocketAddr, agent_wait: &str) -> PathBuf {
    let path = dir.join("scenario.yaml");
    let yaml = format!(
        "name: security\ntarget:\n  url: http://{target}/\n\
         load:\n  model: open\n  rate: 100\n  connections: 4\n  duration: 2s\n\
         regions:\n  - name: local\nstart_delay: 500ms\nagent_wait_timeout: {agent_wait}\n"
    );
    std::fs::write(&path, yaml).expect("write scenario");
    path
}

fn read_report(path: &Path) -> RunReport {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written"))
        .expect("report parses")
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn a_run_over_mtls_between_processes_completes() {
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new(dir.path(), "cluster");
    let server = ca.server("coordinator");
    let client = ca.client("agent");
    let report_path = dir.path().join("report.json");
    let mut coordinator = spawn_coordinator(
        "coordinator",
        &scenario(dir.path(), target, "60s"),
        &[
            "--tls-cert",
            server.cert(),
            "--tls-key",
            server.key(),
            "--tls-client-ca",
            ca.ca(),
        ],
        &["--report", utf8(&report_path)],
    );
    let url = format!("https://{}", listening_on(&coordinator));
    let mut agent = spawn_agent(
        "agent",
        &url,
        "local",
        &[
            "--tls-ca",
            ca.ca(),
            "--tls-cert",
            client.cert(),
            "--tls-key",
            client.key(),
            "--tls-server-name",
            "localhost",
            "--allow-target",
            "127.0.0.1",
        ],
        &[],
    );
    let (status, stderr) = coordinator.wait(Duration::from_secs(60));
    assert!(status.success(), "coordinator failed: {stderr}");
    let (status, stderr) = agent.wait(Duration::from_secs(30));
    assert!(status.success(), "agent failed: {stderr}");

    let report = read_report(&report_path);
    assert_eq!(report.agents.len(), 1);
    assert_eq!(report.agents[0].state, "finished");
    assert_eq!(report.global.requests, 200);
    assert_eq!(served(target)["served"], 200);
}

#[test]
fn agents_without_a_certificate_from_the_trusted_ca_cannot_register() {
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new(dir.path(), "cluster");
    let server = ca.server("coordinator");
    let stranger_ca = TestCa::new(dir.path(), "stranger");
    let stranger = stranger_ca.client("stranger-agent");
    let mut coordinator = spawn_coordinator(
        "coordinator",
        &scenario(dir.path(), target, "4s"),
        &[
            "--tls-cert",
            server.cert(),
            "--tls-key",
            server.key(),
            "--tls-client-ca",
            ca.ca(),
        ],
        &[],
    );
    let url = format!("https://{}", listening_on(&coordinator));
    // Trusts the coordinator, but has no client certificate.
    let mut no_cert = spawn_agent(
        "agent without a certificate",
        &url,
        "local",
        &["--tls-ca", ca.ca(), "--allow-target", "127.0.0.1"],
        &[],
    );
    // Trusts the coordinator, but its certificate is from another CA.
    let mut other_ca = spawn_agent(
        "agent with another CA's certificate",
        &url,
        "local",
        &[
            "--tls-ca",
            ca.ca(),
            "--tls-cert",
            stranger.cert(),
            "--tls-key",
            stranger.key(),
            "--allow-target",
            "127.0.0.1",
        ],
        &[],
    );

    // Does not trust the coordinator's certificate (it expects another CA).
    let mut distrustful = spawn_agent(
        "agent that trusts another CA",
        &url,
        "local",
        &["--tls-ca", stranger_ca.ca(), "--allow-target", "127.0.0.1"],
        &[],
    );

    // A TLS rejection is a configuration error: with --once the agent exits
    // non-zero at once instead of retrying until the Job's deadline.
    for (agent, why) in [
        (&mut no_cert, "CertificateRequired"),
        (&mut other_ca, "UnknownCA"),
        (&mut distrustful, "invalid peer certificate: UnknownIssuer"),
    ] {
        let (status, stderr) = agent.wait(Duration::from_secs(30));
        assert!(!status.success(), "{} must fail", agent.name);
        assert!(
            stderr.contains("TLS handshake with coordinator"),
            "{}: not a TLS rejection:\n{stderr}",
            agent.name
        );
        // The server's alert names the cause, unless the connection was
        // reset before the client read it (TLS 1.3 rejects a client
        // certificate after the client's handshake is done): then the
        // agent gives up after a few sessions closed before registering.
        assert!(
            stderr.contains(why)
                || stderr.contains("closed the session before this agent could register"),
            "{}: expected {why:?} in:\n{stderr}",
            agent.name
        );
    }
    // None of them counts: the coordinator gives up waiting for its one agent.
    let (status, stderr) = coordinator.wait(Duration::from_secs(30));
    assert!(!status.success(), "no agent may have joined: {stderr}");
    assert!(stderr.contains("region local has 0 of 1"), "{stderr}");
    assert!(!stderr.contains("agent registered"), "{stderr}");
    assert_eq!(served(target)["served"], 0, "no load may be sent");
}

#[test]
fn a_missing_or_wrong_token_is_refused_and_the_right_one_runs() {
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, "correct-horse-battery-staple\n").expect("write token");
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "correct-horse-battery-stapler\n").expect("write token");
    let report_path = dir.path().join("report.json");
    let mut coordinator = spawn_coordinator(
        "coordinator",
        &scenario(dir.path(), target, "60s"),
        &["--insecure-plaintext", "--token-file", utf8(&token)],
        &["--report", utf8(&report_path)],
    );
    let url = format!("http://{}", listening_on(&coordinator));

    // With --once, a refused token ends the agent instead of retrying forever.
    for (name, extra) in [
        (
            "agent with a wrong token",
            vec!["--token-file", utf8(&wrong)],
        ),
        ("agent without a token", vec![]),
    ] {
        let mut agent = spawn_agent(name, &url, "local", PLAINTEXT_LOOPBACK_AGENT, &extra);
        let (status, stderr) = agent.wait(Duration::from_secs(30));
        assert!(!status.success(), "{name} must fail");
        assert!(
            stderr.contains("coordinator refused this agent's token: missing or wrong token"),
            "{name}: {stderr}"
        );
    }

    let mut agent = spawn_agent(
        "agent with the token",
        &url,
        "local",
        PLAINTEXT_LOOPBACK_AGENT,
        &["--token-file", utf8(&token)],
    );
    let (status, stderr) = coordinator.wait(Duration::from_secs(60));
    assert!(status.success(), "coordinator failed: {stderr}");
    assert_eq!(
        stderr
            .matches("session refused: missing or wrong token")
            .count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("INSECURE"),
        "plain text is announced: {stderr}"
    );
    let (status, stderr) = agent.wait(Duration::from_secs(30));
    assert!(status.success(), "agent failed: {stderr}");
    let report = read_report(&report_path);
    assert_eq!(report.agents.len(), 1, "the refused agents do not count");
    assert_eq!(report.global.requests, 200);
}

#[test]
fn without_tls_an_allowlist_or_readable_pem_nothing_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = scenario(dir.path(), "127.0.0.1:9".parse().expect("addr"), "60s");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let ca = TestCa::new(dir.path(), "cluster");
    let server = ca.server("coordinator");
    let missing = dir.path().join("missing-key.pem");
    let url = "http://127.0.0.1:9";
    let agent = |extra: &[&str]| {
        let mut args = vec!["agent", "--coordinator", url, "--region", "local", "--once"];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let coordinator = |extra: &[&str]| {
        let mut args = vec![
            "coordinator",
            "--scenario",
            utf8(&scenario),
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let cases = [
        (
            "coordinator without TLS",
            coordinator(&[]),
            "refusing to serve agents in plain text: give --tls-cert and --tls-key".to_owned(),
        ),
        (
            "agent without TLS",
            agent(&["--allow-target", "127.0.0.1"]),
            "refusing to dial the coordinator in plain text".to_owned(),
        ),
        (
            "agent without an allowlist",
            agent(&["--insecure-plaintext"]),
            "refusing to start without a target allowlist".to_owned(),
        ),
        (
            "agent with TLS and an http:// URL",
            agent(&["--tls-ca", ca.ca(), "--allow-target", "127.0.0.1"]),
            "use https:// with TLS".to_owned(),
        ),
        (
            "coordinator with a certificate that is not PEM",
            coordinator(&["--tls-cert", utf8(&garbage), "--tls-key", server.key()]),
            format!("{}: holds no PEM certificate", garbage.display()),
        ),
        (
            "coordinator with a missing key",
            coordinator(&["--tls-cert", server.cert(), "--tls-key", utf8(&missing)]),
            format!("{}: cannot read", missing.display()),
        ),
        (
            "coordinator whose key is not its certificate's",
            coordinator(&[
                "--tls-cert",
                server.cert(),
                "--tls-key",
                ca.client("other").key(),
            ]),
            server.cert().to_owned(),
        ),
        (
            "agent with a CA file that is not PEM",
            agent(&["--tls-ca", utf8(&garbage), "--allow-target", "127.0.0.1"]),
            format!("{}: holds no PEM certificate", garbage.display()),
        ),
        (
            "coordinator with --max-agents 0",
            coordinator(&["--insecure-plaintext", "--max-agents", "0"]),
            "--max-agents must be at least 1".to_owned(),
        ),
    ];
    for (name, args, why) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, stderr) = spawn(name, &args).wait(Duration::from_secs(30));
        assert!(!status.success(), "{name} must not start");
        assert!(
            stderr.contains(&why),
            "{name}: expected {why:?} in:\n{stderr}"
        );
    }
}

#[test]
fn an_assignment_outside_the_allowlist_is_rejected_with_the_reason() {
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut coordinator = spawn_coordinator(
        "coordinator",
        &scenario(dir.path(), target, "60s"),
        PLAINTEXT,
        &[],
    );
    let url = format!("http://{}", listening_on(&coordinator));
    let mut agent = spawn_agent(
        "agent",
        &url,
        "local",
        &[
            "--insecure-plaintext",
            "--allow-target",
            "10.0.0.0/8",
            "--allow-target",
            "*.example.com",
        ],
        &[],
    );
    let (status, stderr) = coordinator.wait(Duration::from_secs(30));
    assert!(!status.success(), "the run must fail: {stderr}");
    assert!(
        stderr.contains("in region local rejected its assignment"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "target 127.0.0.1 is not in this agent's allowlist (--allow-target 10.0.0.0/8, *.example.com)"
        ),
        "{stderr}"
    );
    let _ = agent.wait(Duration::from_secs(30));
    assert_eq!(served(target)["served"], 0, "no load may be sent");
}
