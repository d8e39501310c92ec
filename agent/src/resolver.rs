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
    lookup: Lookup,
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
            lookup: Lookup::System,
        }
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
        self.allowlist.check(&self.host, &addrs)?;
        Ok(Resolution { addrs, took })
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
    /// Resolves `resolver`'s name now.
    pub async fn resolve(resolver: Resolver) -> Result<Self, String> {
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
        let refused = Resolver::new("127.0.0.1", 80, only_other);
        assert!(refused.resolve().await.is_err());
    }
}
