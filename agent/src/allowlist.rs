//! Where this agent agrees to send load. An agent is a machine that can flood
//! any address; the allowlist is what keeps a stolen or mistaken coordinator
//! from aiming the fleet at something else.

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// One entry of `--allow-target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowRule {
    /// Exactly this host name (case-insensitive).
    Host(String),
    /// `*.example.com`: any name below `example.com` (not `example.com` itself).
    Suffix(String),
    /// An address or a network; a single address is a /32 or /128.
    Net(IpNet),
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host(h) => f.write_str(h),
            Self::Suffix(s) => write!(f, "*.{s}"),
            Self::Net(n) if n.prefix_len() == n.max_prefix_len() => write!(f, "{}", n.addr()),
            Self::Net(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--allow-target {entry:?}: {why}; expected HOST, *.SUFFIX, IP or CIDR")]
pub struct AllowRuleError {
    entry: String,
    why: &'static str,
}

impl FromStr for AllowRule {
    type Err = AllowRuleError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let bad = |why| AllowRuleError {
            entry: entry.to_owned(),
            why,
        };
        let s = entry.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Self::Net(net.trunc()));
        }
        if let Ok(ip) = s
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(Self::Net(IpNet::from(ip.to_canonical())));
        }
        if s.contains('/') {
            return Err(bad("not a valid CIDR network"));
        }
        let (suffix, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let name = normalise_host(name);
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        if !name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }) {
            return Err(bad(
                "not a host name (letters, digits, '-' and '.' only; '*' only as a leading '*.')",
            ));
        }
        Ok(if suffix {
            Self::Suffix(name)
        } else {
            Self::Host(name)
        })
    }
}

/// Host names compare lower-case and without a trailing dot.
fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The targets this agent accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetAllowlist {
    /// Anything (`--allow-any-target`, and in-process runs).
    Any,
    /// Only targets matching one of these rules.
    Only(Vec<AllowRule>),
}

impl TargetAllowlist {
    /// Whether a target `host` (as written in its URL) that resolved to
    /// `addrs` may be loaded. A host name passes if a host or suffix rule
    /// names it; otherwise every address it resolves to must be in an allowed
    /// network, so a name cannot smuggle in an address that is not allowed.
    pub fn check(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), String> {
        let rules = match self {
            Self::Any => return Ok(()),
            Self::Only(rules) => rules,
        };
        let host = normalise_host(host.trim_start_matches('[').trim_end_matches(']'));
        let literal = host.parse::<IpAddr>().is_ok();
        if !literal {
            let named = rules.iter().any(|rule| match rule {
                AllowRule::Host(h) => *h == host,
                AllowRule::Suffix(s) => host
                    .strip_suffix(s.as_str())
                    .is_some_and(|below| below.ends_with('.') && below.len() > 1),
                AllowRule::Net(_) => false,
            });
            if named {
                return Ok(());
            }
        }
        let outside: Vec<IpAddr> = addrs
            .iter()
            .map(|a| a.ip().to_canonical())
            .filter(|ip| {
                !rules
                    .iter()
                    .any(|rule| matches!(rule, AllowRule::Net(net) if net.contains(ip)))
            })
            .collect();
        if outside.is_empty() && !addrs.is_empty() {
            return Ok(());
        }
        let allowed = rules
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let what = if literal || outside.is_empty() {
            format!("target {host}")
        } else {
            let shown = outside
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            format!("target {host} (resolves to {shown})")
        };
        Err(format!(
            "{what} is not in this agent's allowlist (--allow-target {allowed})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> TargetAllowlist {
        TargetAllowlist::Only(
            entries
                .iter()
                .map(|e| e.parse().unwrap_or_else(|err| panic!("{e}: {err}")))
                .collect(),
        )
    }

    fn addrs(ips: &[&str]) -> Vec<SocketAddr> {
        ips.iter()
            .map(|ip| SocketAddr::new(ip.parse().expect("ip"), 80))
            .collect()
    }

    #[test]
    fn entries_parse_into_their_kind() {
        assert_eq!(
            "Example.COM.".parse(),
            Ok(AllowRule::Host("example.com".into()))
        );
        assert_eq!(
            "*.example.com".parse(),
            Ok(AllowRule::Suffix("example.com".into()))
        );
        assert_eq!(
            "10.1.2.3/8".parse(),
            Ok(AllowRule::Net("10.0.0.0/8".parse().expect("net")))
        );
        assert_eq!(
            "127.0.0.1".parse(),
            Ok(AllowRule::Net("127.0.0.1/32".parse().expect("net")))
        );
        assert_eq!(
            "[::1]".parse(),
            Ok(AllowRule::Net("::1/128".parse().expect("net")))
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "*",
            "*.",
            "a*.example.com",
            "bad host",
            "x/y",
            "a..b",
        ] {
            let err = bad.parse::<AllowRule>().expect_err(bad);
            assert!(err.to_string().contains("--allow-target"), "{err}");
        }
    }

    #[test]
    fn host_and_suffix_rules_match_names_only() {
        let allow = list(&["api.example.com", "*.internal"]);
        let far = addrs(&["203.0.113.9"]);
        assert!(allow.check("api.example.com", &far).is_ok());
        assert!(allow.check("API.Example.com.", &far).is_ok());
        assert!(allow.check("a.b.internal", &far).is_ok());
        assert!(
            allow.check("internal", &far).is_err(),
            "a suffix does not match its apex"
        );
        assert!(allow.check("evilinternal", &far).is_err());
        assert!(allow.check("www.example.com", &far).is_err());
        // An address literal is never matched by a name rule.
        assert!(allow.check("203.0.113.9", &far).is_err());
    }

    #[test]
    fn a_name_passes_on_addresses_only_if_all_are_allowed() {
        let allow = list(&["127.0.0.0/8", "::1"]);
        assert!(
            allow
                .check("localhost", &addrs(&["127.0.0.1", "::1"]))
                .is_ok()
        );
        assert!(allow.check("127.0.0.1", &addrs(&["127.0.0.1"])).is_ok());
        assert!(allow.check("[::1]", &addrs(&["::1"])).is_ok());
        assert!(
            allow
                .check("::ffff:127.0.0.1", &addrs(&["::ffff:127.0.0.1"]))
                .is_ok()
        );
        let err = allow
            .check("mixed.example", &addrs(&["127.0.0.1", "192.0.2.1"]))
            .expect_err("one address is outside");
        assert_eq!(
            err,
            "target mixed.example (resolves to 192.0.2.1) is not in this agent's allowlist (--allow-target 127.0.0.0/8, ::1)"
        );
        let err = allow
            .check("10.0.0.1", &addrs(&["10.0.0.1"]))
            .expect_err("outside");
        assert!(err.starts_with("target 10.0.0.1 is not in"), "{err}");
        assert!(allow.check("nothing.example", &[]).is_err());
    }

    #[test]
    fn any_allows_everything() {
        assert!(
            TargetAllowlist::Any
                .check("anything", &addrs(&["192.0.2.1"]))
                .is_ok()
        );
    }
}
