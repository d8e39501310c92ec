//! The coordinator's side of TLS: its certificate and key, and the CA whose
//! client certificates it requires (mTLS).

use stampede_proto::security::{self, SecurityError};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// A client that opens a connection and never finishes the handshake is
/// dropped after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    File(#[from] SecurityError),
    #[error("{} and {}: {why}", cert.display(), key.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
}

/// TLS settings, read and checked when the coordinator starts.
#[derive(Clone)]
pub struct ServerTls {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("requires_client_certificates", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// `cert`/`key`: the coordinator's certificate chain and private key
    /// (PEM). `client_ca`: when given, every agent must present a client
    /// certificate signed by it.
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, TlsError> {
        let tls = Self {
            cert: security::read_certificates(cert)?,
            key: security::read_private_key(key)?,
            client_ca: client_ca.map(security::read_certificates).transpose()?,
        };
        // Build the server's TLS config once now, so that a key that does not
        // fit its certificate fails at start-up, not at the first agent.
        tonic::transport::Server::builder()
            .tls_config(tls.tonic_config())
            .map_err(|e| TlsError::Unusable {
                cert: cert.to_owned(),
                key: key.to_owned(),
                why: describe(&e),
            })?;
        Ok(tls)
    }

    pub fn requires_client_certificates(&self) -> bool {
        self.client_ca.is_some()
    }

    pub(crate) fn tonic_config(&self) -> ServerTlsConfig {
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert, &self.key))
            .timeout(HANDSHAKE_TIMEOUT);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        config
    }
}

fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
