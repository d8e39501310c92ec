//! `target.protocol`, `load.streams_per_connection`, `target.tls`,
//! `target.keep_alive` and `target.dns_refresh`: how agents connect to the
//! target. TLS files are read here, at validation, so
//! a bad file is named before the run; their bytes travel to the agents in
//! the assignment.

use super::file::TargetSection;
use super::validate::FieldError;
use stampede_agent::plan::{DnsPolicy, Protocol, TargetTls, Transport};
use std::path::Path;
use std::time::Duration;

/// Most streams per connection.
const MAX_STREAMS: i64 = 1_000;
/// How often agents re-resolve the target's name unless told: k6's default
/// DNS TTL.
const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(300);
const MIN_DNS_REFRESH: Duration = Duration::from_secs(1);

fn err<T>(field: &str, why: impl Into<String>) -> Result<T, FieldError> {
    Err((field.to_owned(), why.into()))
}

/// `any_https`: the target URL (or a region's) is `https`.
pub fn validate(
    t: &TargetSection,
    streams: Option<i64>,
    any_https: bool,
    base: &Path,
) -> Result<Transport, FieldError> {
    let protocol = match t.protocol.as_deref() {
        None | Some("http1") => Protocol::Http1,
        Some("http2") => Protocol::Http2,
        Some(other) => {
            return err(
                "target.protocol",
                format!("{other:?} is not a protocol: write http1 or http2"),
            );
        }
    };
    let streams = match (protocol, streams) {
        // One stream by default, as h2load: `connections` stays the
        // concurrency whichever the protocol; multiplexing is asked for.
        (_, None) => 1,
        (Protocol::Http1, Some(1)) => 1,
        (Protocol::Http1, Some(n)) => {
            return err(
                "load.streams_per_connection",
                format!(
                    "{n}: HTTP/1.1 sends one request at a time per connection; \
                     set target.protocol: http2 for several streams"
                ),
            );
        }
        (Protocol::Http2, Some(n)) if !(1..=MAX_STREAMS).contains(&n) => {
            return err(
                "load.streams_per_connection",
                format!("{n}: must be between 1 and {MAX_STREAMS}"),
            );
        }
        (Protocol::Http2, Some(n)) => n as u32,
    };
    let tls = match &t.tls {
        None => None,
        Some(_) if !any_https => {
            return err(
                "target.tls",
                "applies to https:// URLs, and the target's URLs are all http://",
            );
        }
        Some(section) => {
            let insecure = section.insecure.unwrap_or(false);
            if insecure && section.ca.is_some() {
                return err(
                    "target.tls.insecure",
                    "with insecure: true no certificate is checked, so `ca` would be ignored; remove one",
                );
            }
            let ca_pem = match &section.ca {
                None => Vec::new(),
                Some(file) => stampede_proto::security::read_certificates(&base.join(file))
                    .map_err(|e| ("target.tls.ca".to_owned(), e.to_string()))?,
            };
            let (cert_pem, key_pem) = match (&section.cert, &section.key) {
                (None, None) => (Vec::new(), Vec::new()),
                (Some(_), None) => {
                    return err(
                        "target.tls.key",
                        "a client certificate (`cert`) needs its `key`",
                    );
                }
                (None, Some(_)) => {
                    return err(
                        "target.tls.cert",
                        "a `key` needs its client certificate (`cert`)",
                    );
                }
                (Some(cert), Some(key)) => (
                    stampede_proto::security::read_certificates(&base.join(cert))
                        .map_err(|e| ("target.tls.cert".to_owned(), e.to_string()))?,
                    stampede_proto::security::read_private_key(&base.join(key))
                        .map_err(|e| ("target.tls.key".to_owned(), e.to_string()))?,
                ),
            };
            if let Some(name) = &section.server_name {
                if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
                    return err(
                        "target.tls.server_name",
                        format!("{name:?} is not a DNS name or IP address"),
                    );
                }
            }
            Some(TargetTls {
                ca_pem,
                cert_pem,
                key_pem,
                server_name: section.server_name.clone(),
                insecure,
            })
        }
    };
    let new_connection_per_request = match (t.keep_alive, protocol) {
        (None | Some(true), _) => false,
        (Some(false), Protocol::Http1) => true,
        (Some(false), Protocol::Http2) => {
            return err(
                "target.keep_alive",
                "false applies to HTTP/1.1 (a connection per request); HTTP/2 multiplexes \
                 its streams on one connection",
            );
        }
    };
    let dns_refresh = match t.dns_refresh.as_deref().map(str::trim) {
        None => Some(DEFAULT_DNS_REFRESH),
        Some("never") => None,
        Some(text) => {
            let every =
                super::parse_duration(text).map_err(|e| ("target.dns_refresh".to_owned(), e))?;
            if every.is_zero() {
                None
            } else if every < MIN_DNS_REFRESH {
                return err(
                    "target.dns_refresh",
                    format!("{text}: at least 1s (or `never` to resolve once, at the start)"),
                );
            } else {
                Some(every)
            }
        }
    };
    let dns_policy = match t.dns_policy.as_deref().map(str::trim) {
        None => DnsPolicy::default(),
        Some(text) => match DnsPolicy::NAMES.iter().find(|(name, _)| *name == text) {
            Some((_, policy)) => *policy,
            None => {
                let names: Vec<&str> = DnsPolicy::NAMES.iter().map(|(name, _)| *name).collect();
                return err(
                    "target.dns_policy",
                    format!("{text:?} is not one of {}", names.join(", ")),
                );
            }
        },
    };
    Ok(Transport {
        protocol,
        streams,
        tls,
        new_connection_per_request,
        dns_refresh,
        dns_policy,
    })
}
