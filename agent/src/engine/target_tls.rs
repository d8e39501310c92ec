//! TLS to the target: one rustls `ClientConfig` per run, shared by every
//! connection (so session resumption works across them), built from the PEM
//! bytes of the assignment.

use crate::plan::{Protocol, TargetTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TargetTlsError {
    #[error("target TLS CA bundle: {0}")]
    Ca(String),
    #[error("target TLS client certificate: {0}")]
    ClientCert(String),
    #[error("target TLS server name {name:?}: {why}")]
    ServerName { name: String, why: String },
    #[error("target TLS: {0}")]
    Config(String),
}

/// What a connection needs to start TLS.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    pub connector: tokio_rustls::TlsConnector,
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Builds the run's TLS setup: roots (the scenario's CA, or the public
/// webpki roots), the client certificate if any, ALPN for `protocol`.
pub(crate) fn setup(
    tls: &TargetTls,
    host: &str,
    protocol: Protocol,
) -> Result<TlsSetup, TargetTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TargetTlsError::Config(e.to_string()))?;
    let builder = if tls.insecure {
        tracing::warn!(
            "TLS to the target is INSECURE: the target's certificate is NOT verified (tls.insecure: true)"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
    } else {
        let mut roots = RootCertStore::empty();
        if tls.ca_pem.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        } else {
            for cert in CertificateDer::pem_slice_iter(&tls.ca_pem) {
                let cert = cert.map_err(|e| TargetTlsError::Ca(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| TargetTlsError::Ca(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(TargetTlsError::Ca("holds no certificate".into()));
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = if tls.cert_pem.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain = CertificateDer::pem_slice_iter(&tls.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TargetTlsError::ClientCert(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(&tls.key_pem)
            .map_err(|e| TargetTlsError::ClientCert(format!("key: {e}")))?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TargetTlsError::ClientCert(e.to_string()))?
    };
    config.alpn_protocols = vec![match protocol {
        Protocol::Http1 => b"http/1.1".to_vec(),
        Protocol::Http2 => b"h2".to_vec(),
    }];
    let name = tls.server_name.as_deref().unwrap_or(host);
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|e| TargetTlsError::ServerName {
            name: name.to_owned(),
            why: e.to_string(),
        })?;
    Ok(TlsSetup {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        server_name,
    })
}

/// `insecure: true`: any certificate is accepted; handshake signatures are
/// still checked (the session is encrypted, just not authenticated).
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
