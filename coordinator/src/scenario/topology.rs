//! Multi-region topologies: named endpoints (a deployment in each region,
//! say), how each agent region's traffic is routed to them, and failover
//! drills that change the routing at given times.
//!
//! `routing: home` sends each agent region to the endpoint of the same name;
//! `routing: matrix` sends every agent region to every endpoint, split by
//! the endpoints' weights. A failover either switches one region's traffic
//! to another endpoint, or marks an endpoint down: from then on its share
//! goes to the other endpoints by weight.
//!
//! What the planner needs is, per agent region, the routing over time:
//! [`Topology::periods`] gives consecutive periods with each endpoint's
//! share of the region's load.

use super::file::{EndpointSection, FailoverSection};
use super::validate::FieldError;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub endpoints: Vec<Endpoint>,
    pub routing: Routing,
    /// In time order.
    pub failovers: Vec<Failover>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub name: String,
    pub url: url::Url,
    /// Its share in matrix routing, and of a down endpoint's traffic.
    pub weight: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    Home,
    Matrix,
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Routing::Home => "home",
            Routing::Matrix => "matrix",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failover {
    /// From the run's start.
    pub at: Duration,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The region's agents send everything to this endpoint (index).
    Switch { region: String, to: usize },
    /// Nobody sends to this endpoint (index) any more.
    Down { endpoint: usize },
}

/// A stretch of the run with fixed routing for one agent region.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    pub start: Duration,
    pub end: Duration,
    /// Per endpoint (in `Topology::endpoints` order): its share of the
    /// region's load; they add up to 1.
    pub shares: Vec<f64>,
}

fn err<T>(field: impl Into<String>, why: impl Into<String>) -> Result<T, FieldError> {
    Err((field.into(), why.into()))
}

impl Topology {
    fn index(&self, name: &str) -> Option<usize> {
        self.endpoints.iter().position(|e| e.name == name)
    }

    /// Each endpoint's weight for `region` at the start, before failovers.
    fn base_weights(&self, region: &str) -> Vec<f64> {
        match self.routing {
            Routing::Matrix => self.endpoints.iter().map(|e| e.weight).collect(),
            Routing::Home => self
                .endpoints
                .iter()
                .map(|e| if e.name == region { 1.0 } else { 0.0 })
                .collect(),
        }
    }

    /// The routing of `region`'s load over a run of `duration`: consecutive
    /// periods, a new one at each failover that changes it.
    pub fn periods(&self, region: &str, duration: Duration) -> Vec<Period> {
        let mut weights = self.base_weights(region);
        let mut down = vec![false; self.endpoints.len()];
        let mut periods: Vec<Period> = Vec::new();
        let mut start = Duration::ZERO;
        let shares = |weights: &[f64], down: &[bool]| -> Vec<f64> {
            let live: Vec<f64> = weights
                .iter()
                .zip(down)
                .map(|(w, d)| if *d { 0.0 } else { *w })
                .collect();
            let sum: f64 = live.iter().sum();
            if sum > 0.0 {
                return live.iter().map(|w| w / sum).collect();
            }
            // Its endpoints are all down: the rest by weight.
            let rest: Vec<f64> = self
                .endpoints
                .iter()
                .zip(down)
                .map(|(e, d)| if *d { 0.0 } else { e.weight })
                .collect();
            let sum: f64 = rest.iter().sum();
            rest.iter()
                .map(|w| if sum > 0.0 { w / sum } else { 0.0 })
                .collect()
        };
        for f in &self.failovers {
            if f.at >= duration {
                break;
            }
            let before = shares(&weights, &down);
            match &f.change {
                Change::Switch { region: r, to } if r == region => {
                    weights = vec![0.0; self.endpoints.len()];
                    weights[*to] = 1.0;
                }
                Change::Switch { .. } => {}
                Change::Down { endpoint } => down[*endpoint] = true,
            }
            let after = shares(&weights, &down);
            if after != before && f.at > start {
                periods.push(Period {
                    start,
                    end: f.at,
                    shares: before,
                });
                start = f.at;
            }
        }
        periods.push(Period {
            start,
            end: duration,
            shares: shares(&weights, &down),
        });
        periods
    }
}

/// Checks `endpoints`, `routing` and `failover`. `regions`: the scenario's
/// agent regions; `duration`: the run's.
pub fn validate(
    endpoints: Option<&[EndpointSection]>,
    routing: Option<&str>,
    failover: Option<&[FailoverSection]>,
    regions: &[&str],
    duration: Duration,
    http_url: impl Fn(&str, &str) -> Result<url::Url, FieldError>,
) -> Result<Option<Topology>, FieldError> {
    let Some(sections) = endpoints else {
        if routing.is_some() {
            return err("routing", "needs `endpoints` to route to");
        }
        if failover.is_some() {
            return err("failover", "needs `endpoints` to fail over between");
        }
        return Ok(None);
    };
    if sections.is_empty() {
        return err("endpoints", "list at least one endpoint");
    }
    let mut list: Vec<Endpoint> = Vec::with_capacity(sections.len());
    for (i, e) in sections.iter().enumerate() {
        let field = format!("endpoints[{i}]");
        let name_ok = !e.name.is_empty()
            && e.name.len() <= 63
            && e.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return err(
                format!("{field}.name"),
                format!(
                    "{:?}: use lowercase letters, digits and '-' (it names report rows and metric labels)",
                    e.name
                ),
            );
        }
        if list.iter().any(|o| o.name == e.name) {
            return err(
                format!("{field}.name"),
                format!("{:?} is listed twice", e.name),
            );
        }
        let weight = e.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0) {
            return err(format!("{field}.weight"), "must be a positive number");
        }
        list.push(Endpoint {
            name: e.name.clone(),
            url: http_url(&format!("{field}.url"), &e.url)?,
            weight,
        });
    }
    let routing = match routing {
        None | Some("home") => Routing::Home,
        Some("matrix") => Routing::Matrix,
        Some(other) => {
            return err(
                "routing",
                format!(
                    "{other:?}: use `home` (each agent region to the endpoint of its name) or `matrix` \
                     (every region to every endpoint, by weight)"
                ),
            );
        }
    };
    if routing == Routing::Home {
        if let Some(region) = regions.iter().find(|r| !list.iter().any(|e| e.name == **r)) {
            return err(
                "endpoints",
                format!(
                    "with `routing: home` every agent region needs an endpoint of its name; region {region:?} \
                     has none (name one {region:?}, or use `routing: matrix`)"
                ),
            );
        }
    }
    let mut topology = Topology {
        endpoints: list,
        routing,
        failovers: Vec::new(),
    };
    for (i, f) in failover.unwrap_or_default().iter().enumerate() {
        let field = format!("failover[{i}]");
        let at = super::parse_duration(&f.at).map_err(|why| (format!("{field}.at"), why))?;
        if at.is_zero() || at >= duration {
            return err(
                format!("{field}.at"),
                format!("must fall inside the run (after 0s, before {duration:?})"),
            );
        }
        let endpoint = |field: String, name: &str| {
            topology.index(name).ok_or_else(|| {
                let known: Vec<&str> = topology.endpoints.iter().map(|e| e.name.as_str()).collect();
                (
                    field,
                    format!(
                        "unknown endpoint {name:?}; the endpoints are {}",
                        known.join(", ")
                    ),
                )
            })
        };
        let change = match (&f.region, &f.to, &f.endpoint, f.down) {
            (Some(region), Some(to), None, None) => {
                if !regions.contains(&region.as_str()) {
                    return err(
                        format!("{field}.region"),
                        format!(
                            "unknown region {region:?}; the regions are {}",
                            regions.join(", ")
                        ),
                    );
                }
                Change::Switch {
                    region: region.clone(),
                    to: endpoint(format!("{field}.to"), to)?,
                }
            }
            (None, None, Some(name), Some(true)) => Change::Down {
                endpoint: endpoint(format!("{field}.endpoint"), name)?,
            },
            _ => {
                return err(
                    field,
                    "give either `region` and `to` (switch a region's agents to an endpoint) or `endpoint` and \
                     `down: true` (its traffic goes to the other endpoints)",
                );
            }
        };
        topology.failovers.push(Failover { at, change });
    }
    topology.failovers.sort_by_key(|f| f.at);
    if topology
        .failovers
        .iter()
        .any(|f| matches!(f.change, Change::Down { .. }))
    {
        // Something must be left to send to.
        let downs: Vec<usize> = topology
            .failovers
            .iter()
            .filter_map(|f| match f.change {
                Change::Down { endpoint } => Some(endpoint),
                Change::Switch { .. } => None,
            })
            .collect();
        if (0..topology.endpoints.len()).all(|e| downs.contains(&e)) {
            return err(
                "failover",
                "every endpoint goes down: no load would be left to send",
            );
        }
    }
    Ok(Some(topology))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(routing: Routing, failovers: Vec<Failover>) -> Topology {
        let e = |name: &str, weight| Endpoint {
            name: name.into(),
            url: url::Url::parse(&format!("http://{name}.example/")).expect("url"),
            weight,
        };
        Topology {
            endpoints: vec![e("us", 1.0), e("eu", 1.0), e("ap", 2.0)],
            routing,
            failovers,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn home_routing_sends_a_region_to_its_endpoint() {
        let t = topology(Routing::Home, vec![]);
        assert_eq!(
            t.periods("eu", secs(10)),
            vec![Period {
                start: secs(0),
                end: secs(10),
                shares: vec![0.0, 1.0, 0.0]
            }]
        );
    }

    #[test]
    fn matrix_routing_splits_by_weight() {
        let t = topology(Routing::Matrix, vec![]);
        assert_eq!(t.periods("us", secs(10))[0].shares, vec![0.25, 0.25, 0.5]);
    }

    #[test]
    fn a_switch_moves_one_region_and_a_down_endpoint_spreads_its_share() {
        let t = topology(
            Routing::Home,
            vec![
                Failover {
                    at: secs(4),
                    change: Change::Switch {
                        region: "eu".into(),
                        to: 0,
                    },
                },
                Failover {
                    at: secs(6),
                    change: Change::Down { endpoint: 0 },
                },
            ],
        );
        let eu = t.periods("eu", secs(10));
        let shares: Vec<(u64, Vec<f64>)> = eu
            .iter()
            .map(|p| (p.start.as_secs(), p.shares.clone()))
            .collect();
        // eu: home, then us, then (us down) the others by weight: eu 1, ap 2.
        assert_eq!(
            shares,
            vec![
                (0, vec![0.0, 1.0, 0.0]),
                (4, vec![1.0, 0.0, 0.0]),
                (6, vec![0.0, 1.0 / 3.0, 2.0 / 3.0]),
            ]
        );
        // us is not switched; it loses its home at 6 s.
        let us = t.periods("us", secs(10));
        assert_eq!(us.len(), 2);
        assert_eq!(us[1].shares, vec![0.0, 1.0 / 3.0, 2.0 / 3.0]);
        // ap never changes: one period.
        assert_eq!(t.periods("ap", secs(10)).len(), 1);
        // A failover after the end changes nothing.
        assert_eq!(t.periods("eu", secs(3)).len(), 1);
    }
}
