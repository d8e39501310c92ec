//! The KServe v2 / Triton gRPC mock (`stampede target --kserve`): a tonic
//! server implementing `inference.GRPCInferenceService` over plaintext
//! HTTP/2 (h2c).
//!
//! * **ModelInfer** is answered after the caller's region delay (metadata
//!   `x-stampede-region`, as the HTTP target's header) and echoes its input
//!   tensors as outputs. A set share of calls (every call where
//!   `floor(n × share)` steps up, n counting arrivals from 1) is answered
//!   `UNAVAILABLE` instead, after the same delay: over N calls exactly
//!   `floor(N × share)` fail, so a test can predict the count.
//! * **ServerLive, ServerReady, ModelReady, ModelMetadata** answer at once
//!   (every model is ready; metadata is empty) and are not counted.
//!
//! Calls are counted per status code when their answer is produced; a call
//! whose client went away during its delay is not.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use stampede_proto::kserve::{
    self, grpc_inference_service_server::GrpcInferenceService,
    grpc_inference_service_server::GrpcInferenceServiceServer,
};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::delay::DelaySpec;
use crate::error::TargetError;
use crate::region::check_region_name;
use crate::route::REGION_HEADER;

/// What the mock does.
#[derive(Debug, Clone, PartialEq)]
pub struct KserveConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// ModelInfer delay for calls naming no configured region.
    pub default_delay: DelaySpec,
    /// ModelInfer delay per region (metadata `x-stampede-region`).
    pub region_delays: BTreeMap<String, DelaySpec>,
    /// Share of ModelInfer calls answered UNAVAILABLE, 0..=1.
    pub unavailable_share: f64,
    /// Serve gRPC over TLS (ALPN h2), optionally requiring client
    /// certificates; `None`: plain HTTP/2 (h2c).
    pub tls: Option<crate::ServerTls>,
}

/// Calls answered, per gRPC status code; shared with the server.
#[derive(Debug, Clone, Default)]
pub struct KserveStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    /// ModelInfer arrivals (decides which ones fail).
    arrived: AtomicU64,
    /// ModelInfer answers by code.
    codes: [AtomicU64; 17],
    /// The last ModelInfer request, decoded (for tests).
    last: Mutex<Option<kserve::ModelInferRequest>>,
}

impl KserveStats {
    /// ModelInfer calls answered with `code`.
    pub fn served(&self, code: tonic::Code) -> u64 {
        self.inner.codes[code as usize].load(Ordering::Relaxed)
    }

    /// ModelInfer calls answered, whatever the code.
    pub fn served_total(&self) -> u64 {
        self.inner
            .codes
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The last ModelInfer request received, as decoded by the mock.
    pub fn last_request(&self) -> Option<kserve::ModelInferRequest> {
        self.inner.last.lock().ok().and_then(|last| last.clone())
    }
}

/// A bound, not yet running, KServe mock.
#[derive(Debug)]
pub struct KserveServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    service: Mock,
}

#[derive(Debug, Clone)]
struct Mock {
    config: Arc<KserveConfig>,
    stats: KserveStats,
}

impl KserveServer {
    /// Checks the config and binds the listening socket.
    pub async fn bind(config: KserveConfig) -> Result<KserveServer, TargetError> {
        for name in config.region_delays.keys() {
            check_region_name(name).map_err(|reason| TargetError::InvalidRegion {
                name: name.clone(),
                reason,
            })?;
        }
        if !(0.0..=1.0).contains(&config.unavailable_share) {
            return Err(TargetError::InvalidShare(config.unavailable_share));
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| TargetError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(TargetError::LocalAddr)?;
        Ok(KserveServer {
            listener,
            local_addr,
            service: Mock {
                config: Arc::new(config),
                stats: KserveStats::default(),
            },
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle on the counters; it stays valid after the server stops.
    pub fn stats(&self) -> KserveStats {
        self.service.stats.clone()
    }

    /// Serves until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), TargetError> {
        let local_addr = self.local_addr;
        // Small answers, latency measured: never let Nagle hold one back.
        let incoming = TcpListenerStream::new(self.listener).map(|stream| {
            let stream = stream?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        });
        tracing::info!(%local_addr, "stampede KServe v2 gRPC mock listening");
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &self.service.config.tls {
            let mut config = tonic::transport::ServerTlsConfig::new().identity(
                tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem),
            );
            if let Some(ca) = &tls.client_ca_pem {
                config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
            }
            builder = builder
                .tls_config(config)
                .map_err(|e| TargetError::Tls(e.to_string()))?;
        }
        builder
            .add_service(GrpcInferenceServiceServer::new(self.service))
            .serve_with_incoming_shutdown(incoming, cancel.cancelled_owned())
            .await
            .map_err(|e| TargetError::Grpc(e.to_string()))?;
        tracing::info!(%local_addr, "stampede KServe mock stopped");
        Ok(())
    }
}

impl Mock {
    fn delay_for<T>(&self, request: &Request<T>) -> DelaySpec {
        let region = request
            .metadata()
            .get(REGION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        *region
            .and_then(|r| self.config.region_delays.get(r))
            .unwrap_or(&self.config.default_delay)
    }

    /// Whether the `n`-th arrival (1-based) is one of the failing share.
    fn fails(&self, n: u64) -> bool {
        let share = self.config.unavailable_share;
        (n as f64 * share).floor() > ((n - 1) as f64 * share).floor()
    }

    fn count(&self, code: tonic::Code) {
        self.stats.inner.codes[code as usize].fetch_add(1, Ordering::Relaxed);
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Mock {
    async fn server_live(
        &self,
        _: Request<kserve::ServerLiveRequest>,
    ) -> Result<Response<kserve::ServerLiveResponse>, Status> {
        Ok(Response::new(kserve::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<kserve::ServerReadyRequest>,
    ) -> Result<Response<kserve::ServerReadyResponse>, Status> {
        Ok(Response::new(kserve::ServerReadyResponse { ready: true }))
    }

    async fn model_ready(
        &self,
        _: Request<kserve::ModelReadyRequest>,
    ) -> Result<Response<kserve::ModelReadyResponse>, Status> {
        Ok(Response::new(kserve::ModelReadyResponse { ready: true }))
    }

    async fn model_metadata(
        &self,
        request: Request<kserve::ModelMetadataRequest>,
    ) -> Result<Response<kserve::ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(kserve::ModelMetadataResponse {
            name: r.name,
            versions: vec![r.version],
            platform: "stampede-mock".into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<kserve::ModelInferRequest>,
    ) -> Result<Response<kserve::ModelInferResponse>, Status> {
        let n = self.stats.inner.arrived.fetch_add(1, Ordering::Relaxed) + 1;
        let delay = self.delay_for(&request).sample(&mut fastrand::Rng::new());
        let r = request.into_inner();
        if let Ok(mut last) = self.stats.inner.last.lock() {
            *last = Some(r.clone());
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.fails(n) {
            self.count(tonic::Code::Unavailable);
            return Err(Status::unavailable("mock: this share of calls is refused"));
        }
        self.count(tonic::Code::Ok);
        // Echo: each input comes back as an output of the same name.
        let outputs = r
            .inputs
            .into_iter()
            .map(|i| kserve::model_infer_response::InferOutputTensor {
                name: i.name,
                datatype: i.datatype,
                shape: i.shape,
                parameters: Default::default(),
                contents: i.contents,
            })
            .collect();
        Ok(Response::new(kserve::ModelInferResponse {
            model_name: r.model_name,
            model_version: r.model_version,
            id: r.id,
            parameters: Default::default(),
            outputs,
            raw_output_contents: r.raw_input_contents,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock(share: f64) -> Mock {
        Mock {
            config: Arc::new(KserveConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                default_delay: DelaySpec::default(),
                region_delays: BTreeMap::new(),
                unavailable_share: share,
                tls: None,
            }),
            stats: KserveStats::default(),
        }
    }

    #[test]
    fn the_failing_share_is_exact_and_spread() {
        let m = mock(0.25);
        let failing: Vec<u64> = (1..=12).filter(|n| m.fails(*n)).collect();
        assert_eq!(failing, vec![4, 8, 12]);
        let m = mock(0.1);
        assert_eq!((1..=1000).filter(|n| m.fails(*n)).count(), 100);
        assert_eq!((1..=50).filter(|n| mock(0.0).fails(*n)).count(), 0);
        assert_eq!((1..=50).filter(|n| mock(1.0).fails(*n)).count(), 50);
    }
}
