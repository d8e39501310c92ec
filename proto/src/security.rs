//! What both ends of the session need to trust each other: PEM files read and
//! checked at start-up (so a bad file is named before anything listens or
//! dials), and the shared token an agent sends as gRPC metadata.

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// The metadata key that carries the token: `authorization: Bearer <token>`.
pub const TOKEN_METADATA_KEY: &str = "authorization";
const BEARER: &str = "Bearer ";

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("{origin}: {why}")]
    BadToken { origin: String, why: &'static str },
}

fn read(path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Read {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, why: impl Into<String>) -> SecurityError {
    SecurityError::Invalid {
        path: path.to_owned(),
        why: why.into(),
    }
}

/// Reads a PEM file that must hold at least one certificate (a certificate
/// chain, or a CA bundle); returns its bytes.
pub fn read_certificates(path: &Path) -> Result<Vec<u8>, SecurityError> {
    let bytes = read(path)?;
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        cert.map_err(|e| invalid(path, format!("not a valid PEM certificate file: {e}")))?;
        found += 1;
    }
    if found == 0 {
        return Err(invalid(
            path,
            "holds no PEM certificate (no -----BEGIN CERTIFICATE----- section)",
        ));
    }
    Ok(bytes)
}

/// Reads a PEM file that must hold a private key (PKCS#8, PKCS#1 or SEC1);
/// returns its bytes.
pub fn read_private_key(path: &Path) -> Result<Vec<u8>, SecurityError> {
    let bytes = read(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(_) => Ok(bytes),
        Err(pem::Error::NoItemsFound) => Err(invalid(
            path,
            "holds no PEM private key (no -----BEGIN PRIVATE KEY----- section)",
        )),
        Err(e) => Err(invalid(path, format!("not a valid PEM private key: {e}"))),
    }
}

/// The secret an agent presents to its coordinator. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedToken(String);

impl fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedToken(…)")
    }
}

impl SharedToken {
    /// A token given as a value; `source` names where it came from, for errors.
    /// Surrounding whitespace (a file's trailing newline) is dropped.
    pub fn new(value: &str, source: &str) -> Result<Self, SecurityError> {
        let value = value.trim();
        let bad = |why| SecurityError::BadToken {
            origin: source.to_owned(),
            why,
        };
        if value.is_empty() {
            return Err(bad("the token is empty"));
        }
        // It travels as an HTTP/2 header value.
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "the token may only hold visible ASCII characters (no spaces)",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// Reads the token from a file (its first line is the token).
    pub fn from_file(path: &Path) -> Result<Self, SecurityError> {
        let bytes = read(path)?;
        let text =
            String::from_utf8(bytes).map_err(|_| invalid(path, "the token is not UTF-8 text"))?;
        Self::new(&text, &path.display().to_string())
    }

    /// The metadata value an agent sends.
    pub fn header_value(&self) -> String {
        format!("{BEARER}{}", self.0)
    }

    /// Whether `presented` (the raw metadata value) carries this token.
    /// The comparison takes the same time wherever the bytes differ, so a
    /// caller cannot guess the token byte by byte from response times.
    pub fn accepts(&self, presented: Option<&[u8]>) -> bool {
        let Some(presented) = presented else {
            return false;
        };
        let presented = presented
            .strip_prefix(BEARER.as_bytes())
            .unwrap_or_default();
        bool::from(presented.ct_eq(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_accepts_only_itself_as_a_bearer_value() {
        let token = SharedToken::new("s3cret\n", "test").expect("valid");
        assert!(token.accepts(Some(b"Bearer s3cret")));
        assert!(token.accepts(Some(token.header_value().as_bytes())));
        for wrong in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"Bearer S3cret",
            b"s3cret",
            b"Basic s3cret",
            b"",
        ] {
            assert!(!token.accepts(Some(wrong)), "{wrong:?}");
        }
        assert!(!token.accepts(None));
    }

    #[test]
    fn empty_or_unprintable_tokens_are_refused_naming_the_source() {
        for value in ["", "  \n", "two words", "tab\there", "é"] {
            let err = SharedToken::new(value, "STAMPEDE_TOKEN").expect_err(value);
            assert!(err.to_string().starts_with("STAMPEDE_TOKEN: "), "{err}");
        }
    }

    #[test]
    fn debug_does_not_show_the_token() {
        let token = SharedToken::new("s3cret", "test").expect("valid");
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn bad_pem_files_are_named_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("stampede-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "hello\n").expect("write");
        let broken = dir.join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let missing = dir.join("missing.pem");

        let err = read_certificates(&garbage).expect_err("no certificate");
        assert!(
            err.to_string()
                .contains("garbage.pem: holds no PEM certificate"),
            "{err}"
        );
        let err = read_certificates(&broken).expect_err("bad base64");
        assert!(
            err.to_string().contains("broken.pem: not a valid PEM"),
            "{err}"
        );
        let err = read_private_key(&garbage).expect_err("no key");
        assert!(
            err.to_string()
                .contains("garbage.pem: holds no PEM private key"),
            "{err}"
        );
        let err = read_certificates(&missing).expect_err("missing");
        assert!(
            err.to_string().contains("missing.pem: cannot read"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
