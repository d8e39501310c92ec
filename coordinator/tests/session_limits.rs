//! The coordinator's door, tested with hand-made sessions against a real
//! `stampede coordinator` process: the cap on agents, reports that name
//! another run or agent, and oversized or malformed messages.

mod support;

use stampede_coordinator::report::model::RunReport;
use stampede_proto::v1::{
    self, AgentMessage, agent_message::Kind as Send, coordinator_message::Kind as Recv,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::hand::{HandAgent, interval, register};
use support::{PLAINTEXT, listening_on, spawn_coordinator};

fn scenario(dir: &Path, agents: u32) -> PathBuf {
    let path = dir.join("scenario.yaml");
    let yaml = format!(
        "name: limits\ntarget:\n  url: http://127.0.0.1:9/\n\
         load:\n  model: open\n  rate: 10\n  duration: 1s\n\
         regions:\n  - name: local\n    agents: {agents}\nstart_delay: 200ms\nagent_wait_timeout: 60s\n"
    );
    std::fs::write(&path, yaml).expect("write scenario");
    path
}

#[tokio::test]
async fn max_agents_refuses_the_extra_agent_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let coordinator = spawn_coordinator(
        "coordinator",
        &scenario(dir.path(), 2),
        PLAINTEXT,
        &["--max-agents", "2"],
    );
    let url = format!("http://{}", listening_on(&coordinator));
    let mut first = HandAgent::join(&url).await;
    assert!(matches!(first.next().await, Ok(Recv::Registered(_))));
    let mut second = HandAgent::join(&url).await;
    assert!(matches!(second.next().await, Ok(Recv::Registered(_))));
    let mut third = HandAgent::join(&url).await;
    match third.next().await {
        Ok(Recv::Refused(r)) => assert_eq!(
            r.reason,
            "the coordinator already has its maximum of 2 agent session(s) (--max-agents)"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_scenario_larger_than_max_agents_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut coordinator = spawn_coordinator(
        "coordinator",
        &scenario(dir.path(), 3),
        PLAINTEXT,
        &["--max-agents", "2"],
    );
    let (status, stderr) = coordinator.wait(Duration::from_secs(30));
    assert!(!status.success());
    assert!(
        stderr.contains("the scenario needs 3 agents but --max-agents is 2"),
        "{stderr}"
    );
}

#[tokio::test]
async fn reports_for_another_run_or_agent_are_refused_and_logged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report_path = dir.path().join("report.json");
    let mut coordinator = spawn_coordinator(
        "coordinator",
        &scenario(dir.path(), 1),
        PLAINTEXT,
        &["--report", report_path.to_str().expect("utf-8")],
    );
    let url = format!("http://{}", listening_on(&coordinator));
    let mut agent = HandAgent::join(&url).await;
    assert!(matches!(agent.next().await, Ok(Recv::Registered(_))));
    let run_id = match agent.next().await {
        Ok(Recv::Assignment(a)) => a.run_id,
        other => panic!("expected an assignment, got {other:?}"),
    };
    agent
        .send(Send::AssignmentAccepted(v1::AssignmentAccepted {
            run_id: run_id.clone(),
        }))
        .await;
    let start = match agent.next().await {
        Ok(Recv::Start(s)) => s.start_unix_nanos,
        other => panic!("expected the start, got {other:?}"),
    };

    // Another session claims the same agent id: refused and closed, so
    // nothing it sends counts and its leaving does not mark the agent lost.
    let mut impostor = HandAgent::open(&url, &agent.id, register(&agent.id, "impostor".into()))
        .await
        .expect("session opens");
    match impostor.next().await {
        Ok(Recv::Refused(r)) => assert!(r.reason.contains("already registered"), "{}", r.reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let _ = impostor
        .tx
        .send(AgentMessage {
            kind: Some(interval(&run_id, &agent.id, start, 13)),
        })
        .await;
    drop(impostor);

    let stranger = uuid::Uuid::new_v4().to_string();
    agent
        .send(interval("another-run", &agent.id, start, 7))
        .await;
    agent.send(interval(&run_id, &stranger, start, 11)).await;
    agent
        .send(Send::FinalReport(v1::FinalReport {
            run_id: "another-run".into(),
            agent_id: agent.id.clone(),
            intervals_sent: 1,
            error: String::new(),
        }))
        .await;
    agent.send(interval(&run_id, &agent.id, start, 5)).await;
    agent
        .send(Send::FinalReport(v1::FinalReport {
            run_id: run_id.clone(),
            agent_id: agent.id.clone(),
            intervals_sent: 1,
            error: String::new(),
        }))
        .await;
    assert!(matches!(agent.next().await, Ok(Recv::RunFinished(_))));

    let (status, stderr) =
        tokio::task::spawn_blocking(move || coordinator.wait(Duration::from_secs(30)))
            .await
            .expect("joined");
    assert!(status.success(), "{stderr}");
    for line in [
        "interval report for another run; refused",
        "interval report naming another agent",
        "final report for another run; refused",
    ] {
        assert!(stderr.contains(line), "expected {line:?} in:\n{stderr}");
    }
    let report: RunReport =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report written"))
            .expect("report parses");
    assert_eq!(
        report.global.requests, 5,
        "only the agent's own report counts"
    );
    assert_eq!(report.agents.len(), 1);
    assert_eq!(report.agents[0].state, "finished");
    // Refusals are faults of the report, counted per agent and reason.
    let refused: Vec<&str> = report
        .faults
        .iter()
        .filter(|f| f.kind == "report_refused")
        .map(|f| f.detail.as_str())
        .collect();
    assert!(
        refused
            .iter()
            .any(|d| d.starts_with("interval report for another run (1 report")),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|d| d.starts_with("interval report naming another agent (1 report")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn oversized_and_malformed_sessions_end_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let coordinator = spawn_coordinator("coordinator", &scenario(dir.path(), 1), PLAINTEXT, &[]);
    let url = format!("http://{}", listening_on(&coordinator));

    // A Register over the 4 MiB message limit.
    let id = uuid::Uuid::new_v4().to_string();
    let huge = register(&id, "x".repeat(5 << 20));
    let refused = match HandAgent::open(&url, &id, huge).await {
        Err(status) => status,
        Ok(mut session) => session.next().await.expect_err("the session fails"),
    };
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");

    // A session that does not start with Register.
    let beat = AgentMessage {
        kind: Some(Send::Heartbeat(v1::Heartbeat { sent_unix_nanos: 0 })),
    };
    let refused = match HandAgent::open(&url, &id, beat).await {
        Err(status) => status,
        Ok(mut session) => session.next().await.expect_err("the session fails"),
    };
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");

    // A Register whose agent id is not a uuid.
    let refused = match HandAgent::open(&url, "1; DROP", register("1; DROP", "h".into())).await {
        Err(status) => status,
        Ok(mut session) => session.next().await.expect_err("the session fails"),
    };
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");

    // The coordinator is still there for a well-formed agent.
    let mut agent = HandAgent::join(&url).await;
    assert!(matches!(agent.next().await, Ok(Recv::Registered(_))));
}
