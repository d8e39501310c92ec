//! TLS for the target (`--tls-cert`, `--tls-key`, optionally
//! `--tls-client-ca` to require client certificates): ALPN offers h2 and
//! http/1.1, so one port serves both over TLS.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::TargetError;

/// The target's certificate and key (PEM), and the CA its clients'
/// certificates must chain to (client certificates required when set).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field(
                "client_certificates_required",
                &self.client_ca_pem.is_some(),
            )
            .finish_non_exhaustive()
    }
}

fn tls_error(why: impl std::fmt::Display) -> TargetError {
    TargetError::Tls(why.to_string())
}

/// The acceptor every TLS connection of the server uses.
pub(crate) fn acceptor(tls: &ServerTls) -> Result<TlsAcceptor, TargetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(&tls.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(format!("certificate: {e}")))?;
    if chain.is_empty() {
        return Err(tls_error("certificate: no PEM certificate found"));
    }
    let key =
        PrivateKeyDer::from_pem_slice(&tls.key_pem).map_err(|e| tls_error(format!("key: {e}")))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let builder = match &tls.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| tls_error(format!("client CA: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_error(format!("client CA: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_error(format!("client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| tls_error(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
