//! The agent's side of TLS: the CA it trusts for the coordinator's
//! certificate, and the client certificate it presents (mTLS).

use stampede_proto::security::{self, SecurityError};
use std::path::Path;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// TLS settings, read and checked when the agent starts.
#[derive(Clone)]
pub struct ClientTls {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("client_certificate", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// `ca`: PEM of the CA(s) that signed the coordinator's certificate.
    /// `identity`: this agent's certificate chain and private key (PEM), for
    /// coordinators that require client certificates. `server_name`: the name
    /// to expect in the coordinator's certificate when it differs from the
    /// URL's host.
    pub fn load(
        ca: &Path,
        identity: Option<(&Path, &Path)>,
        server_name: Option<String>,
    ) -> Result<Self, SecurityError> {
        let ca = security::read_certificates(ca)?;
        let identity = match identity {
            Some((cert, key)) => Some((
                security::read_certificates(cert)?,
                security::read_private_key(key)?,
            )),
            None => None,
        };
        Ok(Self {
            ca,
            identity,
            server_name,
        })
    }

    pub fn has_client_certificate(&self) -> bool {
        self.identity.is_some()
    }

    pub(crate) fn tonic_config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca));
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        config
    }
}
