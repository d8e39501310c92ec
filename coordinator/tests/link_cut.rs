//! A link cut between an agent and its coordinator (a proxy that silently
//! stops forwarding: no RST, no FIN) stops the agent's load within a bounded
//! time, and the coordinator marks the agent lost and writes a partial
//! report with what it had.

mod support;

use stampede_agent::{AgentConfig, run_agent};
use stampede_coordinator::cluster::run_coordinator;
use stampede_coordinator::report::model::RunStatus;
use stampede_coordinator::scenario::{Arrival, Load, Model};
use stampede_target::TargetConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{InProcessTarget, one_region_scenario};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Forwards bytes both ways until `cut`; then keeps the sockets open and
/// drops everything, like a link that went dark.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            continue; // swallow
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn proxy(upstream: std::net::SocketAddr, cut: Arc<AtomicBool>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, cut.clone()));
            tokio::spawn(pipe(sr, cw, cut.clone()));
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_stops_the_load_and_the_agent_is_marked_lost() {
    let target = InProcessTarget::start(TargetConfig::default()).await;
    let stats = target.stats.clone();
    let scenario = one_region_scenario(
        "link-cut",
        target.url.clone(),
        Load {
            graceful_stop: Duration::from_secs(2),
            ..Load::constant(
                Model::Open {
                    rate: 200.0,
                    arrival: Arrival::Constant,
                },
                4,
                Duration::from_secs(30),
            )
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let cut = Arc::new(AtomicBool::new(false));
    let via = proxy(listener.local_addr().expect("addr"), cut.clone()).await;
    let mut agent = AgentConfig::new(format!("http://{via}"), "local");
    agent.engine.threads = 1;
    let agent_stop = CancellationToken::new();
    let agent_task = tokio::spawn(run_agent(agent, agent_stop.clone()));
    let coordinator = tokio::spawn(run_coordinator(
        scenario,
        listener,
        CancellationToken::new(),
    ));

    // Let real load flow, then cut the link.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.served() < 300 {
        assert!(Instant::now() < deadline, "load never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cut.store(true, Ordering::SeqCst);
    let cut_at = Instant::now();

    // Watch the target: when did the agent's requests stop arriving?
    let mut last = stats.served();
    let mut last_change = cut_at;
    while cut_at.elapsed() < Duration::from_secs(9) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = stats.served();
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    let stopped_after = last_change - cut_at;
    eprintln!("load stopped {stopped_after:?} after the cut");
    assert!(
        stopped_after <= Duration::from_secs(6),
        "load went on for {stopped_after:?} after the cut"
    );

    // The coordinator gave the agent up and wrote what it had.
    let report = tokio::time::timeout(Duration::from_secs(30), coordinator)
        .await
        .expect("coordinator ends")
        .expect("task")
        .expect("report");
    assert_eq!(report.status, RunStatus::Partial);
    assert!(
        report.notes.iter().any(|n| n.contains("lost")),
        "{:?}",
        report.notes
    );
    assert_eq!(report.agents[0].state, "lost");
    assert!(report.global.requests > 0 && report.global.requests <= stats.served());

    agent_stop.cancel();
    let _ = agent_task.await;
    target.stop().await;
}
