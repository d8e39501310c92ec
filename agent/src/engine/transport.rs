//! Opening a connection to the target: TCP, then TLS when the URL is
//! `https`. The handshake happens here, at connect, so its failure is told
//! apart from a refused TCP connection (its own failure class).

use super::target_tls::TlsSetup;
use crate::phases::ConnectTimings;
use crate::plan::Protocol;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Why a connection could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// TCP: refused, unreachable, ...
    Tcp,
    /// The TLS handshake failed (certificate not trusted, no common
    /// protocol, HTTP/2 not offered by ALPN, ...).
    Tls,
}

/// How every connection of a run is opened; shared read-only.
#[derive(Debug)]
pub(crate) struct Connector {
    pub protocol: Protocol,
    pub tls: Option<TlsSetup>,
    /// The first TLS failure is logged at `warn`, the rest at `debug`.
    tls_failure_logged: AtomicBool,
}

impl Connector {
    pub(crate) fn new(protocol: Protocol, tls: Option<TlsSetup>) -> Self {
        Self {
            protocol,
            tls,
            tls_failure_logged: AtomicBool::new(false),
        }
    }

    /// Opens a connection: TCP, then the TLS handshake for `https`. Gives
    /// how long each took (request phase timings).
    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
    ) -> Result<(TargetStream, ConnectTimings), ConnectFailure> {
        let started = Instant::now();
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|_| ConnectFailure::Tcp)?;
        tcp.set_nodelay(true).map_err(|_| ConnectFailure::Tcp)?;
        let connected = Instant::now();
        let mut timings = ConnectTimings {
            addr,
            tcp: connected - started,
            tls: None,
        };
        let Some(tls) = &self.tls else {
            return Ok((TargetStream::Plain(tcp), timings));
        };
        let stream = match tls.connector.connect(tls.server_name.clone(), tcp).await {
            Ok(stream) => stream,
            Err(e) => {
                self.log_tls_failure(&format!("TLS handshake with {addr} failed: {e}"));
                return Err(ConnectFailure::Tls);
            }
        };
        timings.tls = Some(connected.elapsed());
        if self.protocol == Protocol::Http2 && stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            self.log_tls_failure(&format!(
                "{addr} did not choose HTTP/2 by ALPN (protocol: http2 needs a server offering h2)"
            ));
            return Err(ConnectFailure::Tls);
        }
        Ok((TargetStream::Tls(Box::new(stream)), timings))
    }

    fn log_tls_failure(&self, what: &str) {
        if self.tls_failure_logged.swap(true, Ordering::Relaxed) {
            tracing::debug!("{what}");
        } else {
            tracing::warn!("{what} (further TLS failures are counted as `tls` errors)");
        }
    }
}

/// A connection to the target, plain or TLS.
pub(crate) enum TargetStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for TargetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TargetStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            TargetStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TargetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TargetStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            TargetStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TargetStream::Plain(s) => Pin::new(s).poll_flush(cx),
            TargetStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TargetStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            TargetStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TargetStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            TargetStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            TargetStream::Plain(s) => s.is_write_vectored(),
            TargetStream::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::target_tls;
    use crate::plan::TargetTls;
    use rustls_pki_types::PrivateKeyDer;
    use std::sync::Arc;

    /// A TLS server on loopback offering only `alpn`, with a self-signed
    /// certificate for 127.0.0.1; returns its address and certificate (PEM).
    async fn tls_server(alpn: &[&[u8]]) -> (SocketAddr, Vec<u8>) {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
        let pem = cert.cert.pem().into_bytes();
        let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("config");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // Hold the connection open until the client goes.
                    if let Ok(mut stream) = acceptor.accept(socket).await {
                        let mut buf = [0u8; 64];
                        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                    }
                });
            }
        });
        (addr, pem)
    }

    fn connector(protocol: Protocol, ca_pem: Vec<u8>) -> Connector {
        let tls = TargetTls {
            ca_pem,
            ..TargetTls::default()
        };
        let setup = target_tls::setup(&tls, "127.0.0.1", protocol).expect("setup");
        Connector::new(protocol, Some(setup))
    }

    #[tokio::test]
    async fn http2_needs_the_server_to_choose_h2() {
        let (addr, pem) = tls_server(&[b"http/1.1"]).await;
        // HTTP/1.1 is fine; HTTP/2 is a TLS failure, not a later protocol error.
        assert!(
            connector(Protocol::Http1, pem.clone())
                .connect(addr)
                .await
                .is_ok()
        );
        assert_eq!(
            connector(Protocol::Http2, pem).connect(addr).await.err(),
            Some(ConnectFailure::Tls)
        );
        let (addr, pem) = tls_server(&[b"h2", b"http/1.1"]).await;
        assert!(connector(Protocol::Http2, pem).connect(addr).await.is_ok());
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_tls_failure_and_a_closed_port_a_tcp_one() {
        let (addr, _) = tls_server(&[b"http/1.1"]).await;
        let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
        let wrong_ca = other.cert.pem().into_bytes();
        assert_eq!(
            connector(Protocol::Http1, wrong_ca.clone())
                .connect(addr)
                .await
                .err(),
            Some(ConnectFailure::Tls)
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("addr");
        assert_eq!(
            connector(Protocol::Http1, wrong_ca)
                .connect(closed)
                .await
                .err(),
            Some(ConnectFailure::Tcp)
        );
    }
}
