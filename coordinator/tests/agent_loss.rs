//! Faults, with separate OS processes on loopback: an agent killed with
//! SIGKILL mid-run, an agent that goes silent, the scenario's
//! `on_agent_loss: fail`, the coordinator killed mid-run, and an agent that
//! registers while a run is under way.

mod support;

use stampede_coordinator::report::model::{RunReport, RunStatus};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{
    PLAINTEXT, PLAINTEXT_LOOPBACK_AGENT, Proc, listening_on, served, spawn, spawn_agent,
    spawn_coordinator, start_target,
};

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// A three-region open-model scenario (one agent per region) at `rate`
/// requests/s in all, with `extra` top-level YAML.
fn three_regions(
    dir: &Path,
    target: SocketAddr,
    rate: u32,
    duration: &str,
    extra: &str,
) -> PathBuf {
    let mut yaml = format!("name: faults\ntarget:\n  url: http://{target}/\n  region_urls:\n");
    for region in REGIONS {
        yaml.push_str(&format!("    {region}: http://{target}/region/{region}\n"));
    }
    yaml.push_str(&format!(
        "load:\n  model: open\n  rate: {rate}\n  connections: 30\n  duration: {duration}\n  interval: 1s\nregions:\n"
    ));
    for region in REGIONS {
        yaml.push_str(&format!("  - name: {region}\n"));
    }
    yaml.push_str("start_delay: 500ms\nagent_wait_timeout: 60s\n");
    yaml.push_str(extra);
    let path = dir.join("faults.yaml");
    std::fs::write(&path, yaml).expect("write scenario");
    path
}

/// The target's served count for `region` (0 before its first request).
fn served_in(target: SocketAddr, region: &str) -> u64 {
    served(target)["regions"][region].as_u64().unwrap_or(0)
}

/// Polls until `region` has been served at least `n` requests.
fn wait_for_served(target: SocketAddr, region: &str, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while served_in(target, region) < n {
        assert!(
            Instant::now() < deadline,
            "{region}: fewer than {n} requests served within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_report(path: &Path) -> RunReport {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written"))
        .expect("report parses")
}

fn coordinator(scenario: &Path, report: &Path) -> (Proc, String) {
    let c = spawn_coordinator(
        "coordinator",
        scenario,
        PLAINTEXT,
        &["--report", report.to_str().expect("utf-8 path"), "-q"],
    );
    let url = format!("http://{}", listening_on(&c));
    (c, url)
}

fn agents(url: &str) -> Vec<Proc> {
    REGIONS
        .iter()
        .map(|region| spawn_agent(region, url, region, PLAINTEXT_LOOPBACK_AGENT, &[]))
        .collect()
}

#[test]
fn an_agent_killed_mid_run_leaves_a_partial_report_with_everything_it_reported() {
    let (mut target, target_addr) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    // 100 requests/s per region for 6 s.
    let scenario = three_regions(dir.path(), target_addr, 300, "6s", "");
    let report_path = dir.path().join("report.json");
    let (mut coordinator, url) = coordinator(&scenario, &report_path);
    let mut agents = agents(&url);

    // Two seconds of ap-south's load, then SIGKILL its agent.
    wait_for_served(target_addr, "ap-south", 200, Duration::from_secs(60));
    agents[2].stop();

    let (status, stderr) = coordinator.wait(Duration::from_secs(60));
    assert!(status.success(), "coordinator failed: {stderr}");
    assert!(
        stderr.contains("agent lost mid-run"),
        "the loss has its log line: {stderr}"
    );
    let stats = served(target_addr);
    target.stop();
    let report = read_report(&report_path);

    assert_eq!(report.status, RunStatus::Partial);
    let lost = report
        .agents
        .iter()
        .find(|a| a.region == "ap-south")
        .expect("the killed agent is in the report");
    assert_eq!(lost.state, "lost");
    let lost_at = lost.lost_at_s.expect("when it was lost");
    assert!((1.0..6.0).contains(&lost_at), "lost at {lost_at}s");
    let fault = report
        .faults
        .iter()
        .find(|f| f.kind == "agent_lost")
        .expect("an agent_lost fault");
    assert_eq!(fault.region.as_deref(), Some("ap-south"));
    assert_eq!(fault.agent.as_deref(), Some(lost.id.as_str()));
    assert!(
        report
            .agents
            .iter()
            .filter(|a| a.region != "ap-south")
            .all(|a| a.state == "finished")
    );

    // Everything the killed agent reported is in the totals: the global
    // figures are the agents' sum, its own included.
    assert!(lost.intervals >= 1, "it reported before it died");
    assert!(lost.summary.requests >= 100);
    let agent_sum: u64 = report.agents.iter().map(|a| a.summary.requests).sum();
    assert_eq!(report.global.requests, agent_sum);
    let interval_sum: u64 = report.intervals.iter().map(|i| i.global.requests).sum();
    assert_eq!(interval_sum, report.global.requests);

    // Against the target's own count: the survivors' regions match exactly;
    // ap-south lost only what its agent had not yet reported (at most its
    // open interval and what was in flight: ~1 s at 100 requests/s).
    for region in ["us-east", "eu-west"] {
        let r = report
            .regions
            .iter()
            .find(|r| r.name == region)
            .expect("region");
        assert_eq!(
            r.summary.requests,
            stats["regions"][region].as_u64().expect("count")
        );
    }
    let reported = report
        .regions
        .iter()
        .find(|r| r.name == "ap-south")
        .expect("region")
        .summary
        .requests;
    let served_ap = stats["regions"]["ap-south"].as_u64().expect("count");
    assert!(
        reported <= served_ap,
        "reported {reported} > served {served_ap}"
    );
    assert!(
        served_ap - reported <= 200,
        "only the unreported tail is missing: served {served_ap}, reported {reported}"
    );
}

#[test]
fn on_agent_loss_fail_stops_every_agent_and_fails_the_run() {
    let (mut target, target_addr) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = three_regions(dir.path(), target_addr, 300, "60s", "on_agent_loss: fail\n");
    let report_path = dir.path().join("report.json");
    let (mut coordinator, url) = coordinator(&scenario, &report_path);
    let mut agents = agents(&url);

    wait_for_served(target_addr, "us-east", 100, Duration::from_secs(60));
    let killed_at = Instant::now();
    agents[0].stop();

    let (status, stderr) = coordinator.wait(Duration::from_secs(60));
    assert!(!status.success(), "a failed run exits non-zero: {stderr}");
    assert!(stderr.contains("the run failed"), "{stderr}");
    // The 60 s run ended soon after the loss, not at its planned end.
    assert!(killed_at.elapsed() < Duration::from_secs(30));
    for agent in &mut agents[1..] {
        let (status, stderr) = agent.wait(Duration::from_secs(30));
        assert!(status.success(), "{} failed: {stderr}", agent.name);
    }
    target.stop();

    let report = read_report(&report_path);
    assert_eq!(report.status, RunStatus::Failed);
    let kinds: Vec<&str> = report.faults.iter().map(|f| f.kind.as_str()).collect();
    assert!(kinds.contains(&"agent_lost"), "{kinds:?}");
    assert!(kinds.contains(&"run_failed"), "{kinds:?}");
    // The survivors were stopped and still delivered what they measured.
    for a in report.agents.iter().filter(|a| a.region != "us-east") {
        assert_eq!(a.state, "finished", "{}", a.region);
        assert!(a.summary.requests > 0);
    }
}

#[test]
fn killing_the_coordinator_stops_the_load_and_agents_rejoin_a_new_one() {
    let (mut target, target_addr) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = three_regions(dir.path(), target_addr, 300, "60s", "");
    let report_path = dir.path().join("report.json");
    let (mut first, url) = coordinator(&scenario, &report_path);
    let address = url.trim_start_matches("http://").to_owned();
    // Standing agents (no --once): they reconnect after losing their coordinator.
    let mut agents: Vec<Proc> = REGIONS
        .iter()
        .map(|region| {
            let mut args = vec![
                "agent",
                "--coordinator",
                &url,
                "--region",
                region,
                "--threads",
                "1",
            ];
            args.extend_from_slice(PLAINTEXT_LOOPBACK_AGENT);
            spawn(region, &args)
        })
        .collect();
    wait_for_served(target_addr, "eu-west", 200, Duration::from_secs(60));

    let killed_at = Instant::now();
    first.stop();
    // The load stops at the target.
    let stopped_after =
        support::load_stopped_after(target_addr, killed_at, Duration::from_secs(30));
    eprintln!("load stopped {stopped_after:?} after the coordinator was killed");
    assert!(
        stopped_after <= Duration::from_secs(5),
        "load went on {stopped_after:?} after the coordinator died"
    );

    // A new coordinator on the same address: the agents come back to it.
    let short = three_regions(dir.path(), target_addr, 30, "2s", "");
    let second_report = dir.path().join("second.json");
    let mut second = spawn(
        "second coordinator",
        &[
            "coordinator",
            "--scenario",
            short.to_str().expect("utf-8"),
            "--listen",
            &address,
            "--insecure-plaintext",
            "--report",
            second_report.to_str().expect("utf-8"),
            "-q",
        ],
    );
    let (status, stderr) = second.wait(Duration::from_secs(90));
    assert!(status.success(), "second coordinator failed: {stderr}");
    for agent in &mut agents {
        agent.stop();
    }
    target.stop();
    let report = read_report(&second_report);
    assert_eq!(report.status, RunStatus::Complete);
    assert_eq!(report.agents.len(), 3);
    assert_eq!(report.global.requests, 60);
}

#[test]
fn an_agent_that_registers_mid_run_waits_for_the_next_run_of_the_series() {
    let (mut target, target_addr) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = three_regions(dir.path(), target_addr, 300, "5s", "repeat: 2\n");
    let report_path = dir.path().join("report.json");
    let (mut coordinator, url) = coordinator(&scenario, &report_path);
    let mut agents = agents(&url);

    // ap-south's agent dies early in run 1; its replacement registers while
    // run 1 goes on, waits, and takes the place in run 2.
    wait_for_served(target_addr, "ap-south", 50, Duration::from_secs(60));
    agents[2].stop();
    let replacement = spawn_agent(
        "replacement",
        &url,
        "ap-south",
        PLAINTEXT_LOOPBACK_AGENT,
        &[],
    );
    agents.push(replacement);

    let (status, stderr) = coordinator.wait(Duration::from_secs(90));
    assert!(status.success(), "coordinator failed: {stderr}");
    assert!(
        stderr.contains("waits for the next run"),
        "the late agent waited: {stderr}"
    );
    target.stop();

    let reports: Vec<RunReport> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("report") && name.ends_with(".json") && !name.contains("series")
        })
        .map(|p| read_report(&p))
        .collect();
    assert_eq!(reports.len(), 2, "one report per run");
    let (first, second): (Vec<_>, Vec<_>) = reports
        .into_iter()
        .partition(|r| r.series.as_ref().is_some_and(|s| s.run == 1));
    let (first, second) = (&first[0], &second[0]);
    assert_eq!(first.status, RunStatus::Partial);
    assert_eq!(second.status, RunStatus::Complete, "{:?}", second.notes);
    let ap = |r: &RunReport| {
        r.agents
            .iter()
            .find(|a| a.region == "ap-south")
            .map(|a| a.id.clone())
            .expect("an ap-south agent")
    };
    assert_ne!(ap(first), ap(second), "run 2 has the replacement");
    assert_eq!(second.agents.len(), 3);
}

/// An agent whose session stays open but which sends nothing (a hung
/// process; a link that drops data but not the connection) is declared lost
/// after `agent_loss_timeout`, told to stop, and the run goes on without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_is_declared_lost_after_the_loss_timeout() {
    use stampede_proto::v1::{agent_message::Kind as Send, coordinator_message::Kind as Recv};
    use support::hand::HandAgent;

    let (mut target, target_addr) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = three_regions(
        dir.path(),
        target_addr,
        60,
        "6s",
        "agent_loss_timeout: 3s\n",
    );
    let report_path = dir.path().join("report.json");
    let (mut coordinator, url) = coordinator(&scenario, &report_path);
    let mut real: Vec<Proc> = REGIONS[..2]
        .iter()
        .map(|region| spawn_agent(region, &url, region, PLAINTEXT_LOOPBACK_AGENT, &[]))
        .collect();

    // ap-south's agent accepts, answers the clock exchange, gets its start,
    // and then says nothing more (no reports, no heartbeats).
    let mut silent = HandAgent::join_region(&url, "ap-south").await;
    let mut run_id = String::new();
    let started = loop {
        match silent.next().await.expect("session open") {
            Recv::Assignment(a) => {
                run_id = a.run_id.clone();
                silent
                    .send(Send::AssignmentAccepted(
                        stampede_proto::v1::AssignmentAccepted { run_id: a.run_id },
                    ))
                    .await;
            }
            Recv::Start(_) => break Instant::now(),
            _ => {}
        }
    };
    let stop = loop {
        match silent.next().await.expect("session open") {
            Recv::Stop(stop) => break stop,
            _ => continue,
        }
    };
    let told_after = started.elapsed();
    assert_eq!(stop.run_id, run_id);
    assert!(stop.reason.contains("silent"), "{}", stop.reason);
    // Start came 500 ms ahead of the run; the timeout is 3 s, checked every 300 ms.
    assert!(
        told_after >= Duration::from_secs(3) && told_after < Duration::from_secs(6),
        "told to stop {told_after:?} after its start"
    );

    let (status, stderr) =
        tokio::task::spawn_blocking(move || coordinator.wait(Duration::from_secs(60)))
            .await
            .expect("joined");
    assert!(status.success(), "coordinator failed: {stderr}");
    assert!(
        stderr.contains("silent past agent_loss_timeout"),
        "{stderr}"
    );
    drop(silent);
    for agent in &mut real {
        agent.stop();
    }
    target.stop();

    let report = read_report(&report_path);
    assert_eq!(report.status, RunStatus::Partial);
    let lost = report
        .agents
        .iter()
        .find(|a| a.region == "ap-south")
        .expect("the silent agent is in the report");
    assert_eq!(lost.state, "lost");
    assert_eq!(lost.intervals, 0);
    let fault = report
        .faults
        .iter()
        .find(|f| f.kind == "agent_silent")
        .expect("an agent_silent fault");
    assert_eq!(fault.agent.as_deref(), Some(lost.id.as_str()));
    // The others ran to the end: 20 requests/s each for 6 s.
    for a in report.agents.iter().filter(|a| a.region != "ap-south") {
        assert_eq!(a.state, "finished");
        assert_eq!(a.summary.requests, 120, "{}", a.region);
    }
}

/// `on_agent_loss: redistribute`: when one of us-east's two agents dies,
/// the other takes over its share from a later interval on, and the
/// region's throughput returns to what the scenario asks for.
#[test]
fn redistribute_gives_a_lost_agents_share_to_its_region() {
    let (mut target, target_addr) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("takeover.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: takeover\ntarget:\n  url: http://{target_addr}/\n  region_urls:\n\
             \x20   us-east: http://{target_addr}/region/us-east\n\
             \x20   eu-west: http://{target_addr}/region/eu-west\n\
             load:\n  model: open\n  rate: 300\n  connections: 30\n  duration: 8s\n  interval: 1s\n\
             regions:\n  - name: us-east\n    agents: 2\n    weight: 2\n  - name: eu-west\n\
             start_delay: 500ms\nagent_wait_timeout: 60s\non_agent_loss: redistribute\n"
        ),
    )
    .expect("write scenario");
    let report_path = dir.path().join("report.json");
    let (mut coordinator, url) = coordinator(&scenario, &report_path);
    let mut agents: Vec<Proc> = ["us-east", "us-east", "eu-west"]
        .iter()
        .map(|region| spawn_agent(region, &url, region, PLAINTEXT_LOOPBACK_AGENT, &[]))
        .collect();

    // us-east runs at 200/s (100 per agent): after ~1.5 s, kill one.
    wait_for_served(target_addr, "us-east", 300, Duration::from_secs(60));
    agents[0].stop();

    let (status, stderr) = coordinator.wait(Duration::from_secs(60));
    assert!(status.success(), "coordinator failed: {stderr}");
    let stats = served(target_addr);
    target.stop();
    let report = read_report(&report_path);

    let fault = report
        .faults
        .iter()
        .find(|f| f.kind == "redistributed")
        .expect("a redistributed fault");
    assert!(
        fault.detail.contains("taken over by 1 agent"),
        "{}",
        fault.detail
    );
    let lost_at = report
        .agents
        .iter()
        .find(|a| a.state == "lost")
        .and_then(|a| a.lost_at_s)
        .expect("one agent lost");
    let survivor = report
        .agents
        .iter()
        .find(|a| a.region == "us-east" && a.state == "finished")
        .expect("the survivor finished");
    assert!(
        survivor.summary.requests > 1000,
        "it sent its own share and the lost one's: {}",
        survivor.summary.requests
    );

    // The takeover begins on the first interval boundary at least 1 s after
    // the loss: every whole interval from the one after is back at 200/s.
    let back = report
        .intervals
        .iter()
        .filter(|i| i.start_s >= lost_at + 2.0 && i.end_s <= 8.0 + 1e-6)
        .collect::<Vec<_>>();
    assert!(
        !back.is_empty(),
        "intervals after the takeover: lost at {lost_at}"
    );
    for i in back {
        let n = i.regions["us-east"].requests;
        assert!(
            (198..=202).contains(&n),
            "interval {} (from {:.1}s): us-east {n} requests, want 200",
            i.index,
            i.start_s
        );
    }
    // And nothing the survivor sent is missing against the target's count.
    let reported = report
        .regions
        .iter()
        .find(|r| r.name == "us-east")
        .expect("region")
        .summary
        .requests;
    let served_us = stats["regions"]["us-east"].as_u64().expect("count");
    assert!(reported <= served_us && served_us - reported <= 200);
}

/// `late_joiners: take_over`: a replacement for a killed agent registers
/// mid-run and takes over its share from an interval boundary ahead.
#[test]
fn a_late_agent_takes_over_a_lost_agents_share() {
    let (mut target, target_addr) = start_target(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = three_regions(
        dir.path(),
        target_addr,
        300,
        "10s",
        "late_joiners: take_over\n",
    );
    let report_path = dir.path().join("report.json");
    let (mut coordinator, url) = coordinator(&scenario, &report_path);
    let mut agents = agents(&url);

    wait_for_served(target_addr, "ap-south", 150, Duration::from_secs(60));
    agents[2].stop();
    agents.push(spawn_agent(
        "replacement",
        &url,
        "ap-south",
        PLAINTEXT_LOOPBACK_AGENT,
        &[],
    ));

    let (status, stderr) = coordinator.wait(Duration::from_secs(60));
    assert!(status.success(), "coordinator failed: {stderr}");
    for agent in &mut agents[3..] {
        let (status, stderr) = agent.wait(Duration::from_secs(30));
        assert!(status.success(), "{} failed: {stderr}", agent.name);
    }
    let stats = served(target_addr);
    target.stop();
    let report = read_report(&report_path);

    let ap: Vec<_> = report
        .agents
        .iter()
        .filter(|a| a.region == "ap-south")
        .collect();
    assert_eq!(ap.len(), 2, "the lost agent and its replacement");
    let lost = ap.iter().find(|a| a.state == "lost").expect("lost one");
    let late = ap
        .iter()
        .find(|a| a.state == "finished")
        .expect("replacement");
    let joined = report
        .faults
        .iter()
        .find(|f| f.kind == "late_join")
        .expect("a late_join fault");
    assert_eq!(joined.agent.as_deref(), Some(late.id.as_str()));
    assert!(joined.detail.contains(&lost.id), "{}", joined.detail);
    assert!(
        late.summary.requests >= 200,
        "it ran: {}",
        late.summary.requests
    );
    assert!(late.clock_rtt_ms.is_some(), "its clock was measured");

    // From the takeover on, ap-south is back at its 100 requests/s.
    let lost_at = lost.lost_at_s.expect("when");
    let back: Vec<_> = report
        .intervals
        .iter()
        .filter(|i| i.start_s >= lost_at + 4.0 && i.end_s <= 10.0 + 1e-6)
        .collect();
    assert!(!back.is_empty(), "lost at {lost_at}");
    for i in back {
        let n = i.regions["ap-south"].requests;
        assert!(
            (98..=102).contains(&n),
            "interval {}: ap-south {n}, want 100",
            i.index
        );
    }
    // Everything reported is in the totals, and the target saw no more.
    let agent_sum: u64 = report.agents.iter().map(|a| a.summary.requests).sum();
    assert_eq!(report.global.requests, agent_sum);
    let reported = report
        .regions
        .iter()
        .find(|r| r.name == "ap-south")
        .expect("region")
        .summary
        .requests;
    let served_ap = stats["regions"]["ap-south"].as_u64().expect("count");
    assert!(reported <= served_ap && served_ap - reported <= 200);
}
