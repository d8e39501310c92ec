//! The gRPC face of the coordinator: accepts agent sessions and turns their
//! messages into [`RunCommand`]s for the run actor. It holds no run state.

use crate::run::RunCommand;
use crate::wire;
use stampede_proto::v1::{self, agent_message, agent_session_server::AgentSession};
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;
use uuid::Uuid;

/// Largest message accepted from an agent. An interval report holds two
/// histograms of a few KB each; this leaves ample headroom.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

pub struct AgentSessionService {
    commands: mpsc::Sender<RunCommand>,
}

impl AgentSessionService {
    pub fn new(commands: mpsc::Sender<RunCommand>) -> Self {
        Self { commands }
    }
}

type OutboundStream = Pin<Box<dyn Stream<Item = Result<v1::CoordinatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentSession for AgentSessionService {
    type JoinStream = OutboundStream;

    async fn join(
        &self,
        request: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<Self::JoinStream>, Status> {
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
        let (outbound, rx) = mpsc::channel(32);
        self.commands
            .send(RunCommand::Register { register, outbound })
            .await
            .map_err(|_| Status::unavailable("the coordinator is shutting down"))?;

        let commands = self.commands.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(v1::AgentMessage {
                        kind: Some(agent_message::Kind::IntervalReport(report)),
                    })) => {
                        // Decode here, on this session's task, so that a
                        // thousand agents' histograms are not decoded one by
                        // one inside the run actor.
                        let run_id = report.run_id.clone();
                        let interval = wire::agent_interval(report);
                        let command = RunCommand::Interval {
                            agent_id,
                            run_id,
                            interval,
                        };
                        if commands.send(command).await.is_err() {
                            break;
                        }
                    }
                    Ok(Some(v1::AgentMessage {
                        kind: Some(message),
                    })) => {
                        if commands
                            .send(RunCommand::FromAgent { agent_id, message })
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(status) => {
                        debug!(agent = %agent_id, %status, "agent stream ended");
                        break;
                    }
                }
            }
            let _ = commands.send(RunCommand::Disconnected { agent_id }).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
