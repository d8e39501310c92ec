//! Helpers for tests of a standing cluster: a `coordinator --serve`
//! process, agents that stay (no `--once`), and the run API.

use super::{Proc, spawn};
use stampede_coordinator::history::RunRow;
use stampede_coordinator::serve::api::SubmitRun;
use stampede_coordinator::serve::client::ApiClient;
use stampede_proto::security::SharedToken;
use std::path::Path;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "standing-test-token";

/// Writes the token file the coordinator, its agents and clients share.
pub fn token_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).expect("write token");
    path
}

/// A standing coordinator process on free loopback ports.
pub struct Standing {
    pub proc: Proc,
    /// `http://host:port` agents dial.
    pub agents_url: String,
    /// `http://host:port` of the run API.
    pub api_url: String,
}

pub fn spawn_standing(name: &str, history: &Path, token: &Path) -> Standing {
    let proc = spawn(
        name,
        &[
            "coordinator",
            "--serve",
            "--listen",
            "127.0.0.1:0",
            "--api-listen",
            "127.0.0.1:0",
            "--history",
            history.to_str().expect("utf-8 path"),
            "--token-file",
            token.to_str().expect("utf-8 path"),
            "--insecure-plaintext",
        ],
    );
    let agents = proc.line_after("coordinator listening on ", Duration::from_secs(30));
    let api = proc.line_after("run API listening on ", Duration::from_secs(30));
    Standing {
        proc,
        agents_url: format!("http://{agents}"),
        api_url: api,
    }
}

/// An agent of the standing cluster in `region`: it stays for every run.
pub fn spawn_standing_agent(name: &str, agents_url: &str, region: &str, token: &Path) -> Proc {
    spawn(
        name,
        &[
            "agent",
            "--coordinator",
            agents_url,
            "--region",
            region,
            "--threads",
            "1",
            "--insecure-plaintext",
            "--allow-target",
            "127.0.0.0/8",
            "--token-file",
            token.to_str().expect("utf-8 path"),
        ],
    )
}

pub fn client(api_url: &str) -> ApiClient {
    ApiClient::new(
        url::Url::parse(api_url).expect("api url"),
        SharedToken::new(TOKEN, "test").expect("token"),
    )
    .expect("client")
}

/// A scenario's YAML: open model at `rate` req/s for `duration`, one agent
/// in each of `regions`, one-second intervals.
pub fn scenario_yaml(
    name: &str,
    target: std::net::SocketAddr,
    rate: u32,
    duration: &str,
    regions: &[&str],
    thresholds: &[&str],
) -> String {
    let mut text = format!(
        "name: {name}\ntarget:\n  url: http://{target}/\nload:\n  model: open\n  rate: {rate}\n  duration: {duration}\n  interval: 1s\nstart_delay: 500ms\nagent_wait_timeout: 30s\nregions:\n"
    );
    for region in regions {
        text += &format!("  - name: {region}\n");
    }
    if !thresholds.is_empty() {
        text += "thresholds:\n";
        for t in thresholds {
            text += &format!("  - \"{t}\"\n");
        }
    }
    text
}

pub fn submission(yaml: String, labels: &[&str], git_sha: &str) -> SubmitRun {
    SubmitRun {
        scenario_file: "scenario.yaml".into(),
        scenario_text: yaml,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        git_sha: Some(git_sha.into()),
    }
}

/// Polls run `id` until `done` holds for it (at most `within`).
pub async fn wait_for(
    client: &ApiClient,
    id: &str,
    within: Duration,
    done: impl Fn(&RunRow) -> bool,
) -> RunRow {
    let deadline = Instant::now() + within;
    loop {
        let row = client.run(id).await.expect("get run");
        if done(&row) {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} not there within {within:?}: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until run `id` is over (passed, failed, aborted or error).
pub async fn wait_until_over(client: &ApiClient, id: &str, within: Duration) -> RunRow {
    wait_for(client, id, within, |r| {
        !matches!(r.state.as_str(), "queued" | "running")
    })
    .await
}
