//! The gRPC face of the coordinator: accepts agent sessions and turns their
//! messages into [`RunCommand`]s for the run actor. It holds no run state.
//!
//! It is also the door: a session must carry the shared token (when one is
//! set), the number of sessions is capped, and a session the run actor
//! refuses is closed here, so a refused peer can never speak for an agent id.

use crate::run::RunCommand;
use crate::wire;
use stampede_proto::security::{SharedToken, TOKEN_METADATA_KEY};
use stampede_proto::v1::{
    self, agent_message, agent_session_server::AgentSession, coordinator_message,
};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};
use uuid::Uuid;

/// Largest message accepted from an agent. An interval report holds two
/// histograms of a few KB each; this leaves ample headroom.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// Default cap on concurrent agent sessions (`--max-agents`).
pub const DEFAULT_MAX_AGENTS: usize = 1000;

pub struct AgentSessionService {
    commands: mpsc::Sender<RunCommand>,
    token: Option<SharedToken>,
    sessions: SessionCount,
}

impl AgentSessionService {
    pub fn new(commands: mpsc::Sender<RunCommand>) -> Self {
        Self {
            commands,
            token: None,
            sessions: SessionCount::new(DEFAULT_MAX_AGENTS),
        }
    }

    /// Sessions must present this token.
    pub fn with_token(mut self, token: Option<SharedToken>) -> Self {
        self.token = token;
        self
    }

    /// At most `max` sessions at once; the next one is refused.
    pub fn with_max_agents(mut self, max: usize) -> Self {
        self.sessions = SessionCount::new(max);
        self
    }
}

/// Open sessions, and how many may be open at once.
#[derive(Clone)]
struct SessionCount {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One open session; dropping it frees its place.
struct SessionSlot(Arc<AtomicUsize>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SessionCount {
    fn new(max: usize) -> Self {
        Self {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    fn take(&self) -> Option<SessionSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionSlot(self.open.clone()))
    }
}

type OutboundStream = Pin<Box<dyn Stream<Item = Result<v1::CoordinatorMessage, Status>> + Send>>;

/// A session answered with one `Refused` and closed.
fn refused_stream(reason: String) -> OutboundStream {
    let refused = v1::CoordinatorMessage {
        kind: Some(coordinator_message::Kind::Refused(v1::Refused { reason })),
    };
    Box::pin(tokio_stream::iter([Ok(refused)]))
}

#[tonic::async_trait]
impl AgentSession for AgentSessionService {
    type JoinStream = OutboundStream;

    async fn join(
        &self,
        request: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<Self::JoinStream>, Status> {
        let peer = request.remote_addr();
        if let Some(token) = &self.token {
            let presented = request.metadata().get(TOKEN_METADATA_KEY);
            if !token.accepts(presented.map(|v| v.as_bytes())) {
                warn!(?peer, "session refused: missing or wrong token");
                return Err(Status::unauthenticated(
                    "missing or wrong token (the agent's --token-file or STAMPEDE_TOKEN must match the coordinator's)",
                ));
            }
        }
        let Some(slot) = self.sessions.take() else {
            let reason = format!(
                "the coordinator already has its maximum of {} agent session(s) (--max-agents)",
                self.sessions.max
            );
            warn!(?peer, "session refused: {reason}");
            return Ok(Response::new(refused_stream(reason)));
        };
        let mut inbound = request.into_inner();
        let register = match inbound.message().await? {
            Some(v1::AgentMessage {
                kind: Some(agent_message::Kind::Register(register)),
            }) => register,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of a session must be Register",
                ));
            }
        };
        let agent_id = Uuid::parse_str(&register.agent_id).map_err(|_| {
            Status::invalid_argument(format!("agent id {:?} is not a uuid", register.agent_id))
        })?;
        // The actor writes to `from_actor`; this session's task forwards to
        // the agent and watches for a refusal.
        let (to_session, mut from_actor) = mpsc::channel(32);
        let (to_agent, rx) = mpsc::channel(32);
        self.commands
            .send(RunCommand::Register {
                register,
                outbound: to_session,
            })
            .await
            .map_err(|_| Status::unavailable("the coordinator is shutting down"))?;

        let commands = self.commands.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut refused = false;
            loop {
                tokio::select! {
                    outgoing = from_actor.recv() => match outgoing {
                        Some(message) => {
                            refused = matches!(
                                &message,
                                Ok(v1::CoordinatorMessage { kind: Some(coordinator_message::Kind::Refused(_)) })
                            );
                            if to_agent.send(message).await.is_err() || refused {
                                break;
                            }
                        }
                        None => break,
                    },
                    incoming = inbound.message() => {
                        if !forward(incoming, agent_id, &commands).await {
                            break;
                        }
                    }
                }
            }
            // A refused session was never part of the run: it must not mark
            // the agent registered under the same id as gone.
            if !refused {
                let _ = commands.send(RunCommand::Disconnected { agent_id }).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Hands one inbound message to the run actor; false when the session is over.
async fn forward(
    incoming: Result<Option<v1::AgentMessage>, Status>,
    agent_id: Uuid,
    commands: &mpsc::Sender<RunCommand>,
) -> bool {
    let command = match incoming {
        Ok(Some(v1::AgentMessage {
            kind: Some(agent_message::Kind::IntervalReport(report)),
        })) => {
            // Checked here, on this session's task. The latency, error and
            // lag histograms stay encoded (slices of this message): the run
            // actor decodes them into buffers it reuses (`RunMerge::add`).
            let run_id = report.run_id.clone();
            let interval = wire::agent_interval(report);
            RunCommand::Interval {
                agent_id,
                run_id,
                interval,
            }
        }
        Ok(Some(v1::AgentMessage {
            kind: Some(message),
        })) => RunCommand::FromAgent { agent_id, message },
        Ok(Some(_)) => return true,
        Ok(None) => return false,
        Err(status) => {
            debug!(agent = %agent_id, %status, "agent stream ended");
            return false;
        }
    };
    commands.send(command).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_slots_are_capped_and_freed_on_drop() {
        let count = SessionCount::new(2);
        let a = count.take().expect("first");
        let b = count.take().expect("second");
        assert!(count.take().is_none(), "a third is over the cap");
        drop(a);
        let c = count.take().expect("a freed place is taken again");
        assert!(count.take().is_none());
        drop((b, c));
        assert_eq!(count.open.load(Ordering::Acquire), 0);
    }
}
