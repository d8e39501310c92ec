//! The target's addresses, as this agent sees them.
//!
//! Each agent resolves the target's name itself, so agents in different
//! regions get their own answers (a geo-DNS name sends each region to its
//! nearest deployment). The name is resolved once when an assignment is
//! accepted, so the request loop never waits on DNS, then again every
//! `target.dns_refresh` by a task of the engine's: new connections dial the
//! latest addresses; open keep-alive connections stay where they are, as
//! with k6 and browsers.
//!
//! Every answer passes the agent's allowlist before it is used: a name that
//! re-resolves outside it (DNS rebinding) keeps its previous addresses.
//! Which of a name's addresses are used is the scenario's `target.dns_policy`
//! (as k6's `dns.policy`: IPv4 preferred unless it says otherwise).

use crate::allowlist::TargetAllowlist;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A target's name and how this agent may resolve it.
#[derive(Debug)]
pub struct Resolver {
    host: String,
    port: u16,
    allowlist: TargetAllowlist,
    policy: DnsPolicy,
    lookup: Lookup,
}

/// Which of a name's addresses connections may use (`target.dns_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsPolicy {
    /// IPv4 addresses if the name has any, else IPv6 (k6's default: a name
    /// such as `localhost` that also has `::1` dials `127.0.0.1`, where
    /// most local servers listen).
    #[default]
    PreferIpv4,
    PreferIpv6,
    OnlyIpv4,
    OnlyIpv6,
    /// Every address, connections spread over them.
    Any,
}

impl DnsPolicy {
    /// How the scenario spells each policy, in order.
    pub const NAMES: [(&'static str, DnsPolicy); 5] = [
        ("prefer_ipv4", DnsPolicy::PreferIpv4),
        ("prefer_ipv6", DnsPolicy::PreferIpv6),
        ("only_ipv4", DnsPolicy::OnlyIpv4),
        ("only_ipv6", DnsPolicy::OnlyIpv6),
        ("any", DnsPolicy::Any),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("prefer_ipv4", |(name, _)| name)
    }

    /// The addresses of `found` this policy keeps, in their order; empty
    /// when it keeps none.
    pub fn select(self, found: &[SocketAddr]) -> Vec<SocketAddr> {
        let v4 = || found.iter().copied().filter(SocketAddr::is_ipv4);
        let v6 = || found.iter().copied().filter(SocketAddr::is_ipv6);
        match self {
            DnsPolicy::Any => found.to_vec(),
            DnsPolicy::OnlyIpv4 => v4().collect(),
            DnsPolicy::OnlyIpv6 => v6().collect(),
            DnsPolicy::PreferIpv4 if v4().next().is_some() => v4().collect(),
            DnsPolicy::PreferIpv6 if v6().next().is_some() => v6().collect(),
            DnsPolicy::PreferIpv4 | DnsPolicy::PreferIpv6 => found.to_vec(),
        }
    }
}

/// Where answers come from.
#[derive(Debug)]
enum Lookup {
    /// The system's resolver (getaddrinfo, on tokio's blocking pool).
    System,
    /// Tests: these answers in turn, the last one for ever after.
    #[cfg(test)]
    Scripted(std::sync::Mutex<std::collections::VecDeque<Vec<SocketAddr>>>),
}

/// One answer: the addresses and how long the lookup took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub addrs: Vec<SocketAddr>,
    pub took: Duration,
}

impl Resolver {
    /// `host` as written in the URL (IPv6 literals may keep their brackets).
    pub fn new(host: &str, port: u16, allowlist: TargetAllowlist) -> Self {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Self {
            host: host.to_owned(),
            port,
            allowlist,
            policy: DnsPolicy::default(),
            lookup: Lookup::System,
        }
    }

    /// Keeps the addresses `policy` selects from each answer.
    pub fn with_policy(self, policy: DnsPolicy) -> Self {
        Self { policy, ..self }
    }

    /// A resolver whose name answers `answers` in turn (tests).
    #[cfg(test)]
    pub(crate) fn scripted(host: &str, answers: Vec<Vec<SocketAddr>>) -> Self {
        Self {
            lookup: Lookup::Scripted(std::sync::Mutex::new(answers.into())),
            ..Self::new(host, 0, TargetAllowlist::Any)
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Resolves the name and checks every address against the allowlist.
    pub async fn resolve(&self) -> Result<Resolution, String> {
        let started = Instant::now();
        let addrs: Vec<SocketAddr> = match &self.lookup {
            Lookup::System => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
                .collect(),
            #[cfg(test)]
            Lookup::Scripted(answers) => {
                let mut answers = answers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if answers.len() > 1 {
                    answers.pop_front().unwrap_or_default()
                } else {
                    answers.front().cloned().unwrap_or_default()
                }
            }
        };
        let took = started.elapsed();
        if addrs.is_empty() {
            return Err(format!("{} resolves to no address", self.host));
        }
        let addrs = self.selected(addrs)?;
        Ok(Resolution { addrs, took })
    }

    /// The addresses of an answer the policy keeps, checked against the
    /// allowlist.
    fn selected(&self, found: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
        let addrs = self.policy.select(&found);
        if addrs.is_empty() {
            let listed: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
            return Err(format!(
                "{} has no address that target.dns_policy {} allows (it has {})",
                self.host,
                self.policy.name(),
                listed.join(", ")
            ));
        }
        self.allowlist.check(&self.host, &addrs)?;
        Ok(addrs)
    }
}

/// A target as an assignment left it: the addresses its name resolved to,
/// and (when it was a name this agent resolved) how to resolve it again.
#[derive(Debug)]
pub struct ResolvedTarget {
    pub addrs: Vec<SocketAddr>,
    /// The first lookup's time, and the resolver for refreshes; `None` for
    /// addresses given as they are.
    pub resolved: Option<(Duration, Arc<Resolver>)>,
}

impl From<Vec<SocketAddr>> for ResolvedTarget {
    fn from(addrs: Vec<SocketAddr>) -> Self {
        Self {
            addrs,
            resolved: None,
        }
    }
}

impl ResolvedTarget {
    /// Resolves `resolver`'s name now. An IP address written as the host is
    /// no name: it is checked against the allowlist and used as it is, with
    /// no lookup to time (no DNS phase) and nothing to refresh.
    pub async fn resolve(resolver: Resolver) -> Result<Self, String> {
        if let Ok(ip) = resolver.host.parse::<std::net::IpAddr>() {
            let addrs = resolver.selected(vec![SocketAddr::new(ip, resolver.port)])?;
            return Ok(addrs.into());
        }
        let first = resolver.resolve().await?;
        Ok(Self {
            addrs: first.addrs,
            resolved: Some((first.took, Arc::new(resolver))),
        })
    }
}

/// Re-resolves every `every` until `stop`: updates `book` when the answer
/// changes and sends each lookup's time to `lookups` (the DNS phase). A
/// failed lookup keeps the addresses, and is logged.
pub(crate) fn spawn_refresh(
    resolver: Arc<Resolver>,
    every: Duration,
    book: AddressUpdater,
    lookups: tokio::sync::mpsc::UnboundedSender<Duration>,
    stop: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match resolver.resolve().await {
                Ok(found) => {
                    if lookups.send(found.took).is_err() {
                        return;
                    }
                    if book.update(&found.addrs) {
                        tracing::info!(host = resolver.host(), addrs = ?found.addrs,
                            "the target resolves to new addresses; new connections go there");
                    }
                }
                Err(reason) => {
                    tracing::warn!(%reason, "re-resolving the target failed; keeping its addresses")
                }
            }
        }
    });
}

/// The addresses new connections dial; updated by the refresh task, read by
/// the connections when they (re)connect — never per request.
#[derive(Debug, Clone)]
pub struct AddressBook {
    current: watch::Receiver<Arc<[SocketAddr]>>,
}

/// The refresh task's end of an [`AddressBook`].
#[derive(Debug)]
pub struct AddressUpdater {
    tx: watch::Sender<Arc<[SocketAddr]>>,
}

impl AddressBook {
    /// A book starting at `addrs`, and its updater; `None` when `addrs` is
    /// empty (a book always has an address: the updater keeps it so).
    pub fn new(addrs: Vec<SocketAddr>) -> Option<(Self, AddressUpdater)> {
        if addrs.is_empty() {
            return None;
        }
        let (tx, current) = watch::channel(Arc::from(addrs));
        Some((Self { current }, AddressUpdater { tx }))
    }

    /// The address connection `index` dials now: connections spread over
    /// the addresses.
    pub fn pick(&self, index: u32) -> SocketAddr {
        let addrs = self.current.borrow();
        // Never empty (see `new` and `AddressUpdater::update`).
        addrs[index as usize % addrs.len()]
    }
}

impl AddressUpdater {
    /// Replaces the addresses if they changed; true when they did.
    pub fn update(&self, addrs: &[SocketAddr]) -> bool {
        if addrs.is_empty() {
            return false;
        }
        self.tx.send_if_modified(|current| {
            if current.as_ref() == addrs {
                false
            } else {
                *current = Arc::from(addrs);
                true
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    #[test]
    fn connections_spread_over_the_addresses_and_follow_updates() {
        assert!(AddressBook::new(Vec::new()).is_none());
        let (book, updater) =
            AddressBook::new(vec![addr("127.0.0.1:1"), addr("127.0.0.2:1")]).expect("not empty");
        assert_eq!(book.pick(0), addr("127.0.0.1:1"));
        assert_eq!(book.pick(3), addr("127.0.0.2:1"));
        assert!(!updater.update(&[addr("127.0.0.1:1"), addr("127.0.0.2:1")]));
        assert!(!updater.update(&[]), "an empty answer keeps the addresses");
        assert!(updater.update(&[addr("127.0.0.3:1")]));
        assert_eq!(book.pick(1), addr("127.0.0.3:1"));
    }

    #[tokio::test]
    async fn resolves_and_checks_the_allowlist() {
        let any = Resolver::new("localhost", 8080, TargetAllowlist::Any);
        let found = any.resolve().await.expect("localhost resolves");
        assert!(found.addrs.iter().all(|a| a.ip().is_loopback()));
        let literal = Resolver::new("[::1]", 80, TargetAllowlist::Any);
        assert_eq!(
            literal.resolve().await.expect("literal").addrs,
            vec![addr("[::1]:80")]
        );
        let only_other: TargetAllowlist =
            TargetAllowlist::Only(vec!["10.0.0.0/8".parse().expect("rule")]);
        let refused = Resolver::new("127.0.0.1", 80, only_other.clone());
        assert!(refused.resolve().await.is_err());
        let refused = Resolver::new("127.0.0.1", 80, only_other);
        assert!(ResolvedTarget::resolve(refused).await.is_err());
    }

    #[test]
    fn the_policy_picks_the_family() {
        let both = [addr("[::1]:80"), addr("127.0.0.1:80"), addr("127.0.0.2:80")];
        let v4 = vec![addr("127.0.0.1:80"), addr("127.0.0.2:80")];
        let v6 = vec![addr("[::1]:80")];
        assert_eq!(DnsPolicy::PreferIpv4.select(&both), v4);
        assert_eq!(DnsPolicy::OnlyIpv4.select(&both), v4);
        assert_eq!(DnsPolicy::PreferIpv6.select(&both), v6);
        assert_eq!(DnsPolicy::OnlyIpv6.select(&both), v6);
        assert_eq!(DnsPolicy::Any.select(&both), both.to_vec());
        // Preferring a family the name lacks falls back to the other one.
        assert_eq!(DnsPolicy::PreferIpv6.select(&v4), v4);
        assert_eq!(DnsPolicy::PreferIpv4.select(&v6), v6);
        assert!(DnsPolicy::OnlyIpv6.select(&v4).is_empty());
        for (name, policy) in DnsPolicy::NAMES {
            assert_eq!(policy.name(), name);
        }
    }

    #[tokio::test]
    async fn a_name_without_an_allowed_address_is_refused_with_what_it_has() {
        let only_v6 = Resolver::scripted("svc", vec![vec![addr("127.0.0.1:80")]])
            .with_policy(DnsPolicy::OnlyIpv6);
        let refused = only_v6.resolve().await.expect_err("no IPv6 address");
        assert!(
            refused.contains("svc")
                && refused.contains("only_ipv6")
                && refused.contains("127.0.0.1"),
            "{refused}"
        );
        let literal =
            Resolver::new("127.0.0.1", 80, TargetAllowlist::Any).with_policy(DnsPolicy::OnlyIpv6);
        assert!(ResolvedTarget::resolve(literal).await.is_err());
        let dual = Resolver::scripted(
            "localhost",
            vec![vec![addr("[::1]:80"), addr("127.0.0.1:80")]],
        );
        let found = ResolvedTarget::resolve(dual).await.expect("resolves");
        assert_eq!(
            found.addrs,
            vec![addr("127.0.0.1:80")],
            "IPv4 preferred by default"
        );
    }

    #[tokio::test]
    async fn an_address_literal_is_not_looked_up() {
        for (host, expected) in [("127.0.0.1", "127.0.0.1:80"), ("[::1]", "[::1]:80")] {
            let target = ResolvedTarget::resolve(Resolver::new(host, 80, TargetAllowlist::Any))
                .await
                .expect("a literal needs no lookup");
            assert_eq!(target.addrs, vec![addr(expected)]);
            assert!(
                target.resolved.is_none(),
                "{host}: no lookup time, no refresh"
            );
        }
        let name = ResolvedTarget::resolve(Resolver::new("localhost", 80, TargetAllowlist::Any))
            .await
            .expect("localhost resolves");
        assert!(
            name.resolved.is_some(),
            "a name is looked up, and refreshed"
        );
    }
}
