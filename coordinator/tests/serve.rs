//! A standing cluster: a `coordinator --serve` process keeps agents in three
//! regions between runs and runs what is submitted over its API, one at a
//! time, keeping each in its history.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::standing::{
    client, scenario_yaml, spawn_standing, spawn_standing_agent, submission, token_file, wait_for,
    wait_until_over,
};
use support::{served, spawn, start_target};

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_submitted_back_to_back_run_in_order_and_land_in_history() {
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    let token = token_file(dir.path());
    let history = dir.path().join("history.db");
    let standing = spawn_standing("coordinator", &history, &token);
    let _agents: Vec<_> = REGIONS
        .iter()
        .map(|r| spawn_standing_agent(r, &standing.agents_url, r, &token))
        .collect();
    let api = client(&standing.api_url);

    let yaml = scenario_yaml("checkout", target, 60, "2s", &REGIONS, &["p99 < 10s"]);
    let first = api
        .submit(&submission(yaml.clone(), &["branch=main"], "aaaa111"))
        .await
        .expect("first submitted");
    let second = api
        .submit(&submission(yaml, &["branch=main"], "bbbb222"))
        .await
        .expect("second submitted");
    assert_eq!(
        second.state, "queued",
        "one run at a time: the second waits"
    );

    let first = wait_until_over(&api, &first.id, Duration::from_secs(90)).await;
    let second = wait_until_over(&api, &second.id, Duration::from_secs(90)).await;
    assert_eq!(first.state, "passed", "{first:?}");
    assert_eq!(second.state, "passed", "{second:?}");
    let first_end = first.finished_at_ms.expect("first finished");
    let second_start = second.started_at_ms.expect("second started");
    assert!(
        first_end <= second_start,
        "in order: the second started after the first ended ({first_end} > {second_start})"
    );

    // Both landed with their summaries, equal to their reports', and
    // together they count what the target served.
    let mut counted = 0;
    for row in [&first, &second] {
        let report = api.report(&row.id).await.expect("report");
        assert_eq!(report.run_id, row.id, "the report carries the API's run id");
        let summary = row.summary.expect("a summary");
        assert_eq!(summary.requests, report.global.requests);
        assert_eq!(summary.p99_us, report.global.latency_us.p99);
        assert_eq!(summary.achieved_rps, report.global.achieved_rps);
        assert_eq!(
            report
                .regions
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["us-east", "eu-west", "ap-south"]
        );
        assert!(report.regions.iter().all(|r| r.summary.requests > 0));
        assert_eq!(row.labels, ["branch=main"]);
        assert!(
            row.intervals >= 2,
            "its intervals were kept as they closed: {row:?}"
        );
        counted += report.global.requests;
    }
    assert_eq!(
        served(target)["served"],
        counted,
        "every served request is counted once"
    );

    // The second's HTML report has the trend of both runs.
    let page = api.report_html(&second.id).await.expect("html");
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("<h2>Trend</h2>"), "a trend section");
    for row in [&first, &second] {
        assert!(
            page.contains(&format!("<code>{}</code>", &row.id[..8])),
            "run {} in the trend",
            row.id
        );
    }
    let alone =
        stampede_coordinator::report::html::render(&api.report(&second.id).await.expect("report"))
            .expect("renders");
    assert!(
        !alone.contains("<h2>Trend</h2>"),
        "a plain file renders without a trend"
    );

    // The history lists both, newest first; compare works by run id.
    let history_arg = history.to_str().expect("utf-8");
    let mut list = spawn("history", &["history", "--history", history_arg, "--json"]);
    let (status, stderr) = list.wait(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&list.remaining_stdout().join("\n")).expect("json list");
    let ids: Vec<&str> = listed.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, [second.id.as_str(), first.id.as_str()]);

    let mut compare = spawn(
        "compare",
        &[
            "compare",
            &first.id,
            &second.id,
            "--history",
            history_arg,
            "--format",
            "json",
        ],
    );
    let (status, stderr) = compare.wait(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
    let comparison: serde_json::Value =
        serde_json::from_str(&compare.remaining_stdout().join("\n")).expect("comparison json");
    assert!(comparison.is_object(), "{comparison}");

    let mut baseline = spawn(
        "baseline",
        &[
            "compare",
            &second.id,
            "--baseline",
            "last-passing",
            "--history",
            history_arg,
        ],
    );
    let (status, stderr) = baseline.wait(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
    let out = baseline.remaining_stdout();
    assert!(
        out.iter()
            .any(|l| l == &format!("baseline: run {} (last passing)", first.id)),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stampede_run_exits_with_the_thresholds_verdict() {
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    let token = token_file(dir.path());
    let standing = spawn_standing("coordinator", &dir.path().join("h.db"), &token);
    let _agent = spawn_standing_agent("agent", &standing.agents_url, "local", &token);

    let passing = dir.path().join("passing.yaml");
    std::fs::write(
        &passing,
        scenario_yaml(
            "gate",
            target,
            50,
            "2s",
            &["local"],
            &["p99 < 10s", "error_rate < 1%"],
        ),
    )
    .expect("write");
    let failing = dir.path().join("failing.yaml");
    std::fs::write(
        &failing,
        scenario_yaml(
            "gate",
            target,
            50,
            "2s",
            &["local"],
            &["local: rps > 100000"],
        ),
    )
    .expect("write");

    let run = |scenario: &std::path::Path, report: &std::path::Path| {
        spawn(
            "run",
            &[
                "run",
                scenario.to_str().expect("utf-8"),
                "--coordinator",
                &standing.api_url,
                "--token-file",
                token.to_str().expect("utf-8"),
                "--report",
                report.to_str().expect("utf-8"),
                "--label",
                "ci",
            ],
        )
    };
    let pass_report = dir.path().join("pass.json");
    let mut pass = run(&passing, &pass_report);
    let (status, stderr) = pass.wait(Duration::from_secs(90));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let lines = pass.remaining_stdout();
    assert!(
        lines.iter().any(|l| l.starts_with("interval ")),
        "the live view's interval lines: {lines:?}"
    );
    let report = stampede_coordinator::report::read(&pass_report).expect("report written locally");
    assert!(report.thresholds.iter().all(|t| t.passed));

    let fail_report = dir.path().join("fail.json");
    let mut fail = run(&failing, &fail_report);
    let (status, stderr) = fail.wait(Duration::from_secs(90));
    assert_eq!(status.code(), Some(99), "{stderr}");
    assert!(stderr.contains("local: rps > 100000"), "{stderr}");
    assert!(
        fail_report.exists(),
        "the failing run's report is written too"
    );

    // The history knows both verdicts.
    let api = client(&standing.api_url);
    let rows = api_list(&api).await;
    let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
    assert_eq!(states, ["failed", "passed"]);
}

async fn api_list(
    api: &stampede_coordinator::serve::client::ApiClient,
) -> Vec<stampede_coordinator::history::RunRow> {
    let mut rows = Vec::new();
    for id in api_ids(api).await {
        rows.push(api.run(&id).await.expect("run"));
    }
    rows
}

async fn api_ids(api: &stampede_coordinator::serve::client::ApiClient) -> Vec<String> {
    api.list("")
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// A raw HTTP/1.1 request on loopback, as curl would send it.
fn raw_http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_refuses_a_call_without_the_token_and_serves_one_with_it() {
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    let token = token_file(dir.path());
    let standing = spawn_standing("coordinator", &dir.path().join("h.db"), &token);
    let _agent = spawn_standing_agent("agent", &standing.agents_url, "local", &token);
    let addr = standing.api_url.trim_start_matches("http://");

    let body = serde_json::to_string(&submission(
        scenario_yaml("curl", target, 20, "1s", &["local"], &[]),
        &[],
        "cafe",
    ))
    .expect("json");
    let post = |auth: &str| {
        format!(
            "POST /api/v1/runs HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let refused = raw_http(addr, &post(""));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(refused.contains("Bearer"), "{refused}");
    let wrong = raw_http(addr, &post("Authorization: Bearer not-the-token\r\n"));
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let listing = raw_http(
        addr,
        &format!("GET /api/v1/runs HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    );
    assert!(listing.starts_with("HTTP/1.1 401"), "{listing}");

    let api = client(&standing.api_url);
    assert!(
        api_ids(&api).await.is_empty(),
        "a refused call submitted nothing"
    );

    let accepted = raw_http(
        addr,
        &post(&format!(
            "Authorization: Bearer {}\r\n",
            support::standing::TOKEN
        )),
    );
    assert!(accepted.starts_with("HTTP/1.1 201"), "{accepted}");
    let created: serde_json::Value =
        serde_json::from_str(accepted.split("\r\n\r\n").nth(1).expect("body")).expect("json");
    let id = created["id"].as_str().expect("an id").to_owned();
    let row = wait_until_over(&api, &id, Duration::from_secs(60)).await;
    assert_eq!(row.state, "passed", "{row:?}");
    let got = raw_http(
        addr,
        &format!(
            "GET /api/v1/runs/{id} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            support::standing::TOKEN
        ),
    );
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains(&format!("\"id\":\"{id}\"")), "{got}");

    // A bad scenario is refused with its file:line, as locally.
    let bad = api
        .submit(&submission("name: x\ntarget:\n  url: http://127.0.0.1:1/\nload:\n  model: open\n  rate: -5\n  duration: 1s\nregions:\n  - name: local\n".into(), &[], "x"))
        .await
        .expect_err("refused");
    assert!(bad.to_string().contains("scenario.yaml:6"), "{bad}");
    let _ = wait_for(&api, &id, Duration::from_secs(1), |_| true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_aborted_over_the_api_queued_or_running_and_the_cluster_goes_on() {
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    let token = token_file(dir.path());
    let standing = spawn_standing("coordinator", &dir.path().join("h.db"), &token);
    let _agent = spawn_standing_agent("agent", &standing.agents_url, "local", &token);
    let api = client(&standing.api_url);
    let yaml = |duration| scenario_yaml("abortable", target, 40, duration, &["local"], &[]);

    let long = api
        .submit(&submission(yaml("60s"), &[], "a"))
        .await
        .expect("submitted");
    let queued = api
        .submit(&submission(yaml("2s"), &[], "b"))
        .await
        .expect("submitted");
    wait_for(&api, &long.id, Duration::from_secs(60), |r| {
        r.intervals >= 1
    })
    .await;

    let dropped = api.abort(&queued.id).await.expect("abort the queued run");
    assert_eq!(dropped.state, "aborted", "{dropped:?}");
    api.abort(&long.id).await.expect("abort the running run");
    let stopped = wait_until_over(&api, &long.id, Duration::from_secs(30)).await;
    assert_eq!(stopped.state, "aborted", "{stopped:?}");
    let report = api
        .report(&long.id)
        .await
        .expect("a partial report is kept");
    assert_eq!(
        report.status,
        stampede_coordinator::report::model::RunStatus::Partial
    );
    assert!(report.global.requests > 0);
    let again = api.abort(&long.id).await.expect_err("already over");
    assert!(again.to_string().contains("409"), "{again}");

    // The agent went back to the pool: the next run gets it.
    let next = api
        .submit(&submission(yaml("1s"), &[], "c"))
        .await
        .expect("submitted");
    let next = wait_until_over(&api, &next.id, Duration::from_secs(60)).await;
    assert_eq!(next.state, "passed", "{next:?}");
}

/// A gRPC request carrying `token` (none: `None`).
fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("ascii");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_control_service_submits_streams_and_refuses_without_the_token() {
    use stampede_proto::v1::{self, control_service_client::ControlServiceClient};
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    let token = token_file(dir.path());
    let standing = spawn_standing("coordinator", &dir.path().join("h.db"), &token);
    let _agent = spawn_standing_agent("agent", &standing.agents_url, "local", &token);
    let channel = tonic::transport::Endpoint::from_shared(standing.agents_url.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut control = ControlServiceClient::new(channel);
    let submit = v1::SubmitRunRequest {
        scenario_file: "grpc.yaml".into(),
        scenario_text: scenario_yaml("grpc", target, 30, "2s", &["local"], &[]),
        labels: vec!["via=grpc".into()],
        git_sha: "d00d".into(),
    };

    for token in [None, Some("wrong-token")] {
        let refused = control
            .submit_run(with_token(submit.clone(), token))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused}");
        let refused = control
            .list_runs(with_token(v1::ListRunsRequest::default(), token))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused}");
    }
    let token = Some(support::standing::TOKEN);
    let listed = control
        .list_runs(with_token(v1::ListRunsRequest::default(), token))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.runs.is_empty(), "refused calls submitted nothing");

    let run = control
        .submit_run(with_token(submit, token))
        .await
        .expect("submitted")
        .into_inner();
    let mut events = control
        .watch_run(with_token(v1::RunId { id: run.id.clone() }, token))
        .await
        .expect("watch")
        .into_inner();
    let mut kinds = Vec::new();
    while let Some(event) = events.message().await.expect("stream") {
        let value: serde_json::Value = serde_json::from_str(&event.json).expect("json");
        kinds.push(value["event"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("waiting"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "starting"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| *k == "interval_closed").count() >= 2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("finished"),
        "{kinds:?}"
    );

    // The stream ends when the run has; the history has it by then or soon.
    let api = client(&standing.api_url);
    let row = wait_until_over(&api, &run.id, Duration::from_secs(30)).await;
    assert_eq!(row.state, "passed");
    let info = control
        .get_run(with_token(v1::RunId { id: run.id.clone() }, token))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(info.labels, ["via=grpc"]);
    assert_eq!(info.git_sha, "d00d");
    let summary = info.summary.expect("a summary");
    let report = control
        .get_report(with_token(v1::RunId { id: run.id }, token))
        .await
        .expect("report")
        .into_inner();
    let report: stampede_coordinator::report::model::RunReport =
        serde_json::from_str(&report.json).expect("a report");
    assert_eq!(report.global.requests, summary.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waits_for_late_agents_and_agents_of_unused_regions_stay_for_later_runs() {
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    let token = token_file(dir.path());
    let standing = spawn_standing("coordinator", &dir.path().join("h.db"), &token);
    let api = client(&standing.api_url);

    // Submitted before any agent has joined: it waits for them.
    let local = api
        .submit(&submission(
            scenario_yaml("late", target, 30, "1s", &["local"], &[]),
            &[],
            "1",
        ))
        .await
        .expect("submitted");
    let _spare = spawn_standing_agent("spare", &standing.agents_url, "other", &token);
    let _local = spawn_standing_agent("local", &standing.agents_url, "local", &token);
    let local = wait_until_over(&api, &local.id, Duration::from_secs(60)).await;
    assert_eq!(local.state, "passed", "{local:?}");

    // The agent of the region that run did not use was kept, not refused.
    let other = api
        .submit(&submission(
            scenario_yaml("late", target, 30, "1s", &["other"], &[]),
            &[],
            "2",
        ))
        .await
        .expect("submitted");
    let other = wait_until_over(&api, &other.id, Duration::from_secs(60)).await;
    assert_eq!(other.state, "passed", "{other:?}");
}

#[test]
fn stampede_run_exits_1_with_the_reason_when_the_run_cannot_run() {
    let dir = tempfile::tempdir().expect("tmp");
    let token = token_file(dir.path());
    let standing = spawn_standing("coordinator", &dir.path().join("h.db"), &token);
    let scenario = dir.path().join("nobody.yaml");
    std::fs::write(
        &scenario,
        "name: nobody\ntarget:\n  url: http://127.0.0.1:9/\nload:\n  model: open\n  rate: 10\n  duration: 1s\nagent_wait_timeout: 1s\nregions:\n  - name: nowhere\n",
    )
    .expect("write");
    let mut run = spawn(
        "run",
        &[
            "run",
            scenario.to_str().expect("utf-8"),
            "--coordinator",
            &standing.api_url,
            "--token-file",
            token.to_str().expect("utf-8"),
            "--quiet",
        ],
    );
    let (status, stderr) = run.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not run"), "{stderr}");
    assert!(stderr.contains("region nowhere has 0 of 1"), "{stderr}");
}

#[test]
fn ctrl_c_on_stampede_run_aborts_the_run_and_keeps_its_partial_report() {
    let (_target, target) = start_target(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    let token = token_file(dir.path());
    let standing = spawn_standing("coordinator", &dir.path().join("h.db"), &token);
    let _agent = spawn_standing_agent("agent", &standing.agents_url, "local", &token);
    let scenario = dir.path().join("long.yaml");
    std::fs::write(
        &scenario,
        scenario_yaml("long", target, 30, "60s", &["local"], &[]),
    )
    .expect("write");
    let report = dir.path().join("long.json");
    let mut run = spawn(
        "run",
        &[
            "run",
            scenario.to_str().expect("utf-8"),
            "--coordinator",
            &standing.api_url,
            "--token-file",
            token.to_str().expect("utf-8"),
            "--report",
            report.to_str().expect("utf-8"),
        ],
    );
    let id = run.line_after("run ", Duration::from_secs(30));
    let id = id.split_whitespace().next().expect("an id").to_owned();
    // Once an interval has been shown, the run is under way.
    run.line_after("interval ", Duration::from_secs(30));
    let pid = run.pid().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let (status, stderr) = run.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("run {id} was aborted")),
        "{stderr}"
    );
    let partial =
        stampede_coordinator::report::read(&report).expect("the partial report is written");
    assert_eq!(partial.run_id, id);
    assert_eq!(
        partial.status,
        stampede_coordinator::report::model::RunStatus::Partial
    );
    assert!(partial.scenario.duration_s >= 60.0);
    assert!(partial.global.requests > 0);
}
