//! An agent session driven by hand, message by message, for tests of the
//! coordinator's door and of how it treats a misbehaving agent.

use stampede_agent::engine::IntervalRecord;
use stampede_agent::recorder::IntervalRecorder;
use stampede_proto::histogram::Encoding;
use stampede_proto::v1::{
    self, AgentMessage, agent_message::Kind as Send, agent_session_client::AgentSessionClient,
    coordinator_message::Kind as Recv,
};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A session driven by hand, message by message.
pub struct HandAgent {
    pub id: String,
    pub tx: mpsc::Sender<AgentMessage>,
    inbound: tonic::Streaming<v1::CoordinatorMessage>,
}

/// Register in region `local`.
pub fn register(id: &str, hostname: String) -> AgentMessage {
    register_in(id, "local", hostname)
}

pub fn register_in(id: &str, region: &str, hostname: String) -> AgentMessage {
    AgentMessage {
        kind: Some(Send::Register(v1::Register {
            agent_id: id.to_owned(),
            region: region.into(),
            zone: String::new(),
            version: "test".into(),
            cores: 1,
            hostname,
        })),
    }
}

impl HandAgent {
    /// Opens a session whose first message is `first`.
    pub async fn open(url: &str, id: &str, first: AgentMessage) -> Result<Self, tonic::Status> {
        let mut client = AgentSessionClient::connect(url.to_owned())
            .await
            .expect("connects");
        let (tx, rx) = mpsc::channel(16);
        tx.send(first).await.expect("queued");
        let inbound = client.join(ReceiverStream::new(rx)).await?.into_inner();
        Ok(Self {
            id: id.to_owned(),
            tx,
            inbound,
        })
    }

    /// Registers in region `local`.
    pub async fn join(url: &str) -> Self {
        Self::join_region(url, "local").await
    }

    pub async fn join_region(url: &str, region: &str) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        Self::open(url, &id, register_in(&id, region, "hand".into()))
            .await
            .expect("session opens")
    }

    /// The next message from the coordinator (or the stream's error).
    /// Clock probes are answered on the way, as a real agent does (with
    /// this host's clock: no offset).
    pub async fn next(&mut self) -> Result<Recv, tonic::Status> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.inbound.message())
                .await
                .expect("the coordinator answers in time")?;
            match message.and_then(|m| m.kind).expect("a message") {
                Recv::ClockProbe(probe) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as i64);
                    self.send(Send::ClockReply(v1::ClockReply {
                        seq: probe.seq,
                        probe_sent_unix_nanos: probe.sent_unix_nanos,
                        received_unix_nanos: now,
                        replied_unix_nanos: now,
                    }))
                    .await;
                }
                other => return Ok(other),
            }
        }
    }

    pub async fn send(&self, kind: Send) {
        self.tx
            .send(AgentMessage { kind: Some(kind) })
            .await
            .expect("session open");
    }
}

/// An interval report with `successes` requests of 1 ms each.
pub fn interval(run_id: &str, agent_id: &str, start: i64, successes: u64) -> Send {
    let mut data = IntervalRecorder::new();
    for _ in 0..successes {
        data.record_success(Duration::from_millis(1), 200, 0);
    }
    let record = IntervalRecord {
        index: 0,
        start: Duration::ZERO,
        end: Duration::from_secs(1),
        data,
        last: true,
    };
    Send::IntervalReport(
        stampede_agent::wire::interval_report(run_id, agent_id, start, &record, Encoding::Plain)
            .expect("encodes"),
    )
}
