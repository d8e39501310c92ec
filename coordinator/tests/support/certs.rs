//! Certificates made at test time (rcgen), written as PEM files to a temp dir.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// A certificate and its key on disk.
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    pub fn cert(&self) -> &str {
        self.cert.to_str().expect("utf-8 path")
    }
    pub fn key(&self) -> &str {
        self.key.to_str().expect("utf-8 path")
    }
}

/// A test CA that issues server and client certificates into `dir`.
pub struct TestCa {
    name: String,
    dir: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA's own certificate (PEM file), what the other side trusts.
    pub cert: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let cert = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&cert, issuer.pem()).expect("write CA");
        Self {
            name: name.to_owned(),
            dir: dir.to_owned(),
            issuer,
            cert,
        }
    }

    pub fn ca(&self) -> &str {
        self.cert.to_str().expect("utf-8 path")
    }

    /// A certificate for `localhost` and 127.0.0.1 (a coordinator's).
    pub fn server(&self, file: &str) -> CertFiles {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, file, "coordinator")
    }

    /// A client certificate (an agent's).
    pub fn client(&self, file: &str) -> CertFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, file, "agent")
    }

    fn issue(&self, mut params: CertificateParams, file: &str, common_name: &str) -> CertFiles {
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{} {common_name}", self.name));
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let files = CertFiles {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}-key.pem")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}

/// The built-in target (in process) serving TLS with a certificate from
/// `ca`, requiring client certificates from `ca` when `client_auth`; with
/// `delay` before each answer.
pub async fn tls_target(
    ca: &TestCa,
    client_auth: bool,
    delay: std::time::Duration,
) -> super::InProcessTarget {
    let server = ca.server("target");
    let read = |p: &Path| std::fs::read(p).expect("read PEM");
    super::InProcessTarget::start(stampede_target::TargetConfig {
        tls: Some(stampede_target::ServerTls {
            cert_pem: read(&server.cert),
            key_pem: read(&server.key),
            client_ca_pem: client_auth.then(|| read(&ca.cert)),
        }),
        default_delay: stampede_target::DelaySpec::Fixed(delay),
        ..stampede_target::TargetConfig::default()
    })
    .await
}
