//! Turns a [`ScenarioFile`] into a [`Scenario`], or says which field is wrong
//! and why.

use super::file::ScenarioFile;
use super::search;
use super::stages::{self, LevelUnit, Phase, PhaseKind};
use super::thresholds;
use super::{
    Arrival, DEFAULT_AGENT_LOSS_TIMEOUT, FaultPolicy, LateJoiners, Load, Model, OnAgentLoss,
    RegionSpec, Scenario, Share, Target, parse_duration,
};
use super::{data, requests};
use std::collections::BTreeMap;
use std::time::Duration;

/// Most runs in a series.
const MAX_REPEAT: i64 = 100;

/// A field path and the reason it is wrong.
pub type FieldError = (String, String);

fn err<T>(field: impl Into<String>, why: impl Into<String>) -> Result<T, FieldError> {
    Err((field.into(), why.into()))
}

fn duration(field: &str, text: Option<&str>, default: Duration) -> Result<Duration, FieldError> {
    match text {
        None => Ok(default),
        Some(t) => parse_duration(t).map_err(|why| (field.to_owned(), why)),
    }
}

fn positive_duration(
    field: &str,
    text: Option<&str>,
    default: Duration,
) -> Result<Duration, FieldError> {
    let d = duration(field, text, default)?;
    if d.is_zero() {
        return err(field, "must be longer than zero");
    }
    Ok(d)
}

/// Agents beat every 2 s: a shorter loss timeout would declare healthy
/// agents lost between two beats.
const MIN_AGENT_LOSS_TIMEOUT: Duration = Duration::from_secs(3);

fn fault_policy(raw: &ScenarioFile) -> Result<FaultPolicy, FieldError> {
    let agent_loss_timeout = duration(
        "agent_loss_timeout",
        raw.agent_loss_timeout.as_deref(),
        DEFAULT_AGENT_LOSS_TIMEOUT,
    )?;
    if agent_loss_timeout < MIN_AGENT_LOSS_TIMEOUT {
        return err(
            "agent_loss_timeout",
            format!(
                "must be at least {MIN_AGENT_LOSS_TIMEOUT:?}: agents send a heartbeat every 2s, so a shorter \
                 timeout would declare healthy agents lost"
            ),
        );
    }
    let on_agent_loss = match raw.on_agent_loss.as_deref() {
        None | Some("continue") => OnAgentLoss::Continue,
        Some("fail") => OnAgentLoss::Fail,
        Some("redistribute") => OnAgentLoss::Redistribute,
        Some(other) => {
            return err(
                "on_agent_loss",
                format!(
                    "{other:?} is not a policy: use `continue` (the run goes on, partial), `fail` (the run stops) \
                     or `redistribute` (the region's other agents take over its share)"
                ),
            );
        }
    };
    let late_joiners = match raw.late_joiners.as_deref() {
        None | Some("wait") => LateJoiners::Wait,
        Some("take_over") => LateJoiners::TakeOver,
        Some(other) => {
            return err(
                "late_joiners",
                format!(
                    "{other:?} is not a choice: use `wait` (for the next run) or `take_over` (a lost agent's \
                     share in its region)"
                ),
            );
        }
    };
    Ok(FaultPolicy {
        agent_loss_timeout,
        on_agent_loss,
        late_joiners,
    })
}

/// Region names become labels, URL parts and metric labels: keep them tame.
fn check_region_name(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        err(
            field,
            format!(
                "{name:?} is not a valid region name (lowercase letters, digits and '-', at most 63)"
            ),
        )
    }
}

fn http_url(field: &str, text: &str) -> Result<url::Url, FieldError> {
    let url = url::Url::parse(text)
        .map_err(|e| (field.to_owned(), format!("{text:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return err(
            field,
            format!("scheme {:?} is not supported (http or https)", url.scheme()),
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        return err(field, format!("{text:?} has no host"));
    }
    Ok(url)
}

/// `base`: the scenario file's folder (data and body files are relative to it).
pub fn validate(raw: ScenarioFile, base: &std::path::Path) -> Result<Scenario, FieldError> {
    let name = raw.name.clone().unwrap_or_else(|| "scenario".to_owned());
    if name.trim().is_empty() {
        return err("name", "must not be empty");
    }

    // Regions first: other sections refer to them.
    if raw.regions.is_empty() {
        return err("regions", "list at least one region");
    }
    let mut regions = Vec::with_capacity(raw.regions.len());
    for (i, r) in raw.regions.iter().enumerate() {
        let at = |f: &str| format!("regions[{i}].{f}");
        check_region_name(&at("name"), &r.name)?;
        if regions.iter().any(|x: &RegionSpec| x.name == r.name) {
            return err(at("name"), format!("region {:?} is listed twice", r.name));
        }
        let agents = r.agents.unwrap_or(1);
        if !(1..=10_000).contains(&agents) {
            return err(
                at("agents"),
                format!("{agents} agents: must be between 1 and 10000"),
            );
        }
        let share = match (r.weight, r.rate) {
            (Some(_), Some(_)) => return err(at("rate"), "give a weight or a rate, not both"),
            (_, Some(rate)) if !(rate.is_finite() && rate > 0.0) => {
                return err(
                    at("rate"),
                    format!("{rate}: must be a positive number of requests per second"),
                );
            }
            (_, Some(rate)) => Share::Rate(rate),
            (Some(w), None) if !(w.is_finite() && w > 0.0) => {
                return err(at("weight"), format!("{w}: must be a positive number"));
            }
            (w, None) => Share::Weight(w.unwrap_or(1.0)),
        };
        regions.push(RegionSpec {
            name: r.name.clone(),
            agents: agents as u32,
            share,
        });
    }
    let total_agents: u32 = regions.iter().map(|r| r.agents).sum();

    let t = &raw.target;
    let url = http_url("target.url", &t.url)?;
    let method = t
        .method
        .clone()
        .unwrap_or_else(|| "GET".to_owned())
        .to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return err("target.method", format!("{method:?} is not an HTTP method"));
    }
    for (k, v) in &t.headers {
        let field = format!("target.headers.{k}");
        if k.is_empty() || k.bytes().any(|b| !b.is_ascii_graphic() || b == b':') {
            return err(field, "is not a valid header name");
        }
        if v.bytes().any(|b| b == b'\r' || b == b'\n') {
            return err(field, "header values cannot contain line breaks");
        }
    }
    let mut region_urls = BTreeMap::new();
    for (region, text) in &t.region_urls {
        let field = format!("target.region_urls.{region}");
        if !regions.iter().any(|r| &r.name == region) {
            let known: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
            return err(
                field,
                format!(
                    "unknown region {region:?}; the scenario's regions are {}",
                    known.join(", ")
                ),
            );
        }
        region_urls.insert(region.clone(), http_url(&field, text)?);
    }
    // Endpoints are checked later; an https one is enough for `target.tls`.
    let https_endpoint = raw
        .endpoints
        .iter()
        .flatten()
        .any(|e| url::Url::parse(&e.url).is_ok_and(|u| u.scheme() == "https"));
    let any_https = url.scheme() == "https"
        || https_endpoint
        || region_urls
            .values()
            .any(|u: &url::Url| u.scheme() == "https");
    let transport =
        super::transport::validate(t, raw.load.streams_per_connection, any_https, base)?;
    let target = Target {
        method,
        url,
        headers: t
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body: t.body.clone().unwrap_or_default().into_bytes(),
        timeout: positive_duration(
            "target.timeout",
            t.timeout.as_deref(),
            Duration::from_secs(10),
        )?,
        region_urls,
        transport,
    };

    let l = &raw.load;
    let explicit_rates: f64 = regions
        .iter()
        .map(|r| match r.share {
            Share::Rate(rate) => rate,
            Share::Weight(_) => 0.0,
        })
        .sum();
    let any_weighted = regions.iter().any(|r| matches!(r.share, Share::Weight(_)));
    let unit = match l.model.as_str() {
        "closed" => LevelUnit::Connections,
        _ => LevelUnit::Rate,
    };
    // A search sets the load itself: its first probe stands in for stages.
    let search = match &raw.search {
        None => None,
        Some(section) => Some(search::validate(section, &raw, unit, &regions)?),
    };
    // With stages, the stages set the level and the duration.
    let staged = match (&l.stages, &search) {
        (_, Some(spec)) => Some(spec.phases(spec.total(regions.len(), spec.start))),
        (None, None) => None,
        (Some(list), None) => {
            if l.duration.is_some() {
                return err(
                    "load.duration",
                    "the stages set the duration: remove load.duration",
                );
            }
            if l.rate.is_some() {
                return err(
                    "load.rate",
                    "with stages, each stage sets the rate: remove load.rate",
                );
            }
            if unit == LevelUnit::Connections && l.connections.is_some() {
                return err(
                    "load.connections",
                    "with stages, each stage sets the connections: remove load.connections",
                );
            }
            if let Some(i) = regions
                .iter()
                .position(|r| matches!(r.share, Share::Rate(_)))
            {
                return err(
                    format!("regions[{i}].rate"),
                    "a fixed region rate cannot follow stages; give the region a weight",
                );
            }
            Some(stages::phases(list, unit)?)
        }
    };
    let model = match l.model.as_str() {
        "closed" => {
            if l.rate.is_some() {
                return err(
                    "load.rate",
                    "the closed model has no rate; use `model: open` or remove it",
                );
            }
            if l.arrival.is_some() || l.seed.is_some() {
                return err(
                    "load.arrival",
                    "arrival processes apply to the open model only",
                );
            }
            if let Some(i) = regions
                .iter()
                .position(|r| matches!(r.share, Share::Rate(_)))
            {
                return err(
                    format!("regions[{i}].rate"),
                    "the closed model has no rate; use a weight",
                );
            }
            Model::Closed
        }
        "open" => {
            let rate = match (l.rate, &staged) {
                (_, Some(phases)) => measured_mean(phases),
                (rate, None) => match rate {
                    Some(rate) if !(rate.is_finite() && rate > 0.0) => {
                        return err(
                            "load.rate",
                            format!("{rate}: must be a positive number of requests per second"),
                        );
                    }
                    Some(rate) => rate,
                    None if !any_weighted => explicit_rates,
                    None => {
                        return err(
                            "load.rate",
                            "the open model needs a rate (requests per second) or stages",
                        );
                    }
                },
            };
            if explicit_rates > rate * (1.0 + 1e-9) || (any_weighted && explicit_rates >= rate) {
                return err(
                    "load.rate",
                    format!(
                        "{rate} req/s does not cover the regions' explicit rates ({explicit_rates} req/s) plus the weighted regions"
                    ),
                );
            }
            if l.rate.is_some() && !any_weighted && (explicit_rates - rate).abs() > rate * 1e-9 {
                return err(
                    "load.rate",
                    format!(
                        "{rate} req/s differs from the sum of the regions' rates ({explicit_rates} req/s)"
                    ),
                );
            }
            let arrival = match l.arrival.as_deref() {
                None | Some("constant") => {
                    if l.seed.is_some() {
                        return err("load.seed", "a seed only applies to `arrival: poisson`");
                    }
                    Arrival::Constant
                }
                Some("poisson") => Arrival::Poisson {
                    seed: l.seed.unwrap_or_else(random_seed),
                },
                Some(other) => {
                    return err(
                        "load.arrival",
                        format!("{other:?}: expected `constant` or `poisson`"),
                    );
                }
            };
            Model::Open { rate, arrival }
        }
        other => {
            return err(
                "load.model",
                format!("{other:?}: expected `open` or `closed`"),
            );
        }
    };
    let duration = match &staged {
        Some(phases) => phases.iter().map(|p| p.duration).sum(),
        None => match l.duration.as_deref() {
            Some(text) => positive_duration("load.duration", Some(text), Duration::ZERO)?,
            None => return err("load.duration", "how long should the load run? e.g. 30s"),
        },
    };
    let interval = positive_duration(
        "load.interval",
        l.interval.as_deref(),
        Duration::from_secs(1),
    )?;
    if interval < Duration::from_millis(100) {
        return err("load.interval", "must be at least 100ms");
    }
    if duration > Duration::from_secs(7 * 24 * 3600) {
        return err(
            if staged.is_some() {
                "load.stages"
            } else {
                "load.duration"
            },
            "at most 7 days",
        );
    }
    let connections = match (&staged, model) {
        // Closed model with stages: the peak concurrency.
        (Some(phases), Model::Closed) => {
            let peak = phases.iter().map(|p| p.from.max(p.to)).fold(0.0, f64::max) as u32;
            if peak < total_agents {
                return err(
                    "load.stages",
                    format!(
                        "the peak concurrency, {peak} connections, cannot give each of the {total_agents} agents one"
                    ),
                );
            }
            peak
        }
        _ => match l.connections {
            // An open-model search: a pool for the highest level it may probe.
            None if search.is_some() => {
                let peak = search
                    .as_ref()
                    .map_or(0.0, |spec| spec.total(regions.len(), spec.max));
                total_agents.max(((peak / 100.0).ceil() as u32).clamp(1, 1000))
            }
            None => total_agents.max(match model {
                Model::Closed => 10,
                Model::Open { .. } => {
                    let peak = staged.as_deref().map_or(
                        match model {
                            Model::Open { rate, .. } => rate,
                            Model::Closed => 0.0,
                        },
                        |p| p.iter().map(|p| p.from.max(p.to)).fold(0.0, f64::max),
                    );
                    ((peak / 100.0).ceil() as u32).clamp(1, 1000)
                }
            }),
            Some(c) if c < i64::from(total_agents) => {
                return err(
                    "load.connections",
                    format!("{c}: needs at least one per agent ({total_agents} agents)"),
                );
            }
            Some(c) if c > 1_000_000 => {
                return err("load.connections", format!("{c}: at most 1000000"));
            }
            Some(c) => c as u32,
        },
    };
    let phases = match staged {
        Some(phases) => {
            match &search {
                Some(spec) => search::check_alignment(spec, interval)?,
                None => stages::check_alignment(&phases, interval)?,
            }
            phases
        }
        None => {
            let level = match model {
                Model::Open { rate, .. } => rate,
                Model::Closed => f64::from(connections),
            };
            stages::steady(level, duration)
        }
    };
    let think_time = match l.think_time.as_deref() {
        None => None,
        Some(_) if !matches!(model, Model::Closed) => {
            return err(
                "load.think_time",
                "think time applies to the closed model only",
            );
        }
        Some(text) => Some(think_time("load.think_time", text)?),
    };
    let load = Load {
        model,
        connections,
        duration,
        interval,
        graceful_stop: self::duration(
            "load.graceful_stop",
            l.graceful_stop.as_deref(),
            target.timeout.min(Duration::from_secs(5)),
        )?,
        think_time,
        staged: l.stages.is_some(),
        phases,
    };

    let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
    let thresholds = raw
        .thresholds
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, text)| {
            thresholds::parse(text, &names).map_err(|why| (format!("thresholds[{i}]"), why))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let data = match &raw.data {
        None => None,
        Some(d) => Some(data::read(
            base,
            &d.file,
            d.format.as_deref(),
            d.order.as_deref(),
        )?),
    };
    let requests = match &raw.requests {
        None => {
            // The target's own request may use the data too (its body and
            // headers; its URL is parsed, so placeholders go in `requests`).
            requests::check_templates("target", &requests::from_target(&target), data.as_ref())?;
            Vec::new()
        }
        Some(list) => {
            if raw.target.method.is_some() {
                return err(
                    "target.method",
                    "with `requests`, each request has its own method",
                );
            }
            if raw.target.body.is_some() {
                return err(
                    "target.body",
                    "with `requests`, each request has its own body",
                );
            }
            requests::requests(list, &target, base, data.as_ref())?
        }
    };
    // A mix shares each agent's connections: one host and port per region.
    for region in &regions {
        let base_url = target.url_for(&region.name);
        let mut origin = None;
        for (i, r) in requests.iter().enumerate() {
            let field = format!("requests[{i}].url");
            let (url, _) = stampede_agent::wire::split_url(&r.url.resolve(base_url))
                .map_err(|why| (field.clone(), why))?;
            match &origin {
                None => origin = Some(url.origin()),
                Some(o) if *o != url.origin() => {
                    return err(
                        field,
                        format!(
                            "goes to {}, but the mix's first request goes to {} (in region {}); \
                             a mix shares connections, so all its requests need one host and port",
                            url.origin().ascii_serialization(),
                            o.ascii_serialization(),
                            region.name
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }

    let grpc = super::grpc::check(&raw, &target.url, base, data.as_ref())?;
    if grpc.is_some() {
        // The gRPC client opens one HTTP/2 connection per `connection`, one
        // call in flight: more streams would be ignored.
        if target.transport.streams > 1 {
            return err(
                "load.streams_per_connection",
                "a gRPC connection has one call in flight: raise `load.connections` instead",
            );
        }
    }

    let repeat = match raw.repeat {
        None => 1,
        Some(n) if (1..=MAX_REPEAT).contains(&n) => n as u32,
        Some(n) => {
            return err("repeat", format!("{n}: must be between 1 and {MAX_REPEAT}"));
        }
    };

    if raw.llm.is_none() {
        if let Some(i) = thresholds.iter().position(|t| t.metric.is_llm()) {
            return err(
                format!("thresholds[{i}]"),
                format!(
                    "{} is a model-serving figure: add an `llm:` section",
                    thresholds[i].metric.name()
                ),
            );
        }
    }
    let llm = match &raw.llm {
        None => None,
        Some(section) => {
            let g = section.goodput.as_ref();
            let limit =
                |field: &str, text: Option<&String>| -> Result<Option<Duration>, FieldError> {
                    match text {
                        None => Ok(None),
                        Some(t) => positive_duration(field, Some(t), Duration::ZERO).map(Some),
                    }
                };
            Some(stampede_agent::plan::LlmSpec {
                goodput: stampede_agent::llm::GoodputSlo {
                    ttft: limit("llm.goodput.ttft", g.and_then(|g| g.ttft.as_ref()))?,
                    tpot: limit("llm.goodput.tpot", g.and_then(|g| g.tpot.as_ref()))?,
                    e2e: limit("llm.goodput.e2e", g.and_then(|g| g.e2e.as_ref()))?,
                },
            })
        }
    };

    if raw.endpoints.is_some() && !target.region_urls.is_empty() {
        return err(
            "endpoints",
            "give endpoints either as `endpoints` or as `target.region_urls`, not both",
        );
    }
    let region_names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
    let topology = super::topology::validate(
        raw.endpoints.as_deref(),
        raw.routing.as_deref(),
        raw.failover.as_deref(),
        &region_names,
        load.duration,
        http_url,
    )?;
    if topology.is_some() && load.model == Model::Closed && load.staged {
        return err(
            "endpoints",
            "endpoints with closed-model stages are not supported: use the open model, or a closed model \
             without stages",
        );
    }
    if grpc.is_some() {
        // Each endpoint's (or region's) URL is where its calls go.
        for (region, url) in &target.region_urls {
            super::grpc::check_origin(&format!("target.region_urls.{region}"), url)?;
        }
        for (i, e) in topology.iter().flat_map(|t| &t.endpoints).enumerate() {
            super::grpc::check_origin(&format!("endpoints[{i}].url"), &e.url)?;
        }
    }

    let cost = match &raw.cost {
        None => None,
        Some(c) => {
            if !(c.hourly_usd.is_finite() && c.hourly_usd >= 0.0) {
                return err(
                    "cost.hourly_usd",
                    format!("{}: must be zero or a positive price", c.hourly_usd),
                );
            }
            let instances = c.instances.unwrap_or(1);
            if !(1..=100_000).contains(&instances) {
                return err(
                    "cost.instances",
                    format!("{instances}: must be between 1 and 100000"),
                );
            }
            Some(super::Cost {
                hourly_usd: c.hourly_usd,
                instances: instances as u32,
            })
        }
    };
    let scenario = Scenario {
        grpc,
        cost,
        llm,
        search: None,
        repeat,
        requests,
        data,
        thresholds,
        name,
        target,
        load,
        regions,
        start_delay: positive_duration(
            "start_delay",
            raw.start_delay.as_deref(),
            Duration::from_secs(2),
        )?,
        agent_wait_timeout: positive_duration(
            "agent_wait_timeout",
            raw.agent_wait_timeout.as_deref(),
            Duration::from_secs(60),
        )?,
        faults: fault_policy(&raw)?,
        topology,
    };
    Ok(match search {
        None => scenario,
        // The scenario as checked is the search's first probe.
        Some(spec) => {
            let first = spec.legs(&scenario).into_iter().next().flatten();
            let mut probe = spec.probe(&scenario, first.as_deref(), spec.start);
            probe.search = Some(spec);
            probe
        }
    })
}

/// Mean level over the measured (non-warm-up) phases.
fn measured_mean(phases: &[Phase]) -> f64 {
    let (area, secs) =
        phases
            .iter()
            .filter(|p| p.kind != PhaseKind::Warmup)
            .fold((0.0, 0.0), |(a, s), p| {
                let d = p.duration.as_secs_f64();
                (a + p.mean() * d, s + d)
            });
    if secs > 0.0 { area / secs } else { 0.0 }
}

/// A seed for a Poisson run that names none: from the clock and the process
/// (no need for cryptographic quality; it is recorded in the report).
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// `200ms` (fixed) or `uniform(100ms,300ms)`.
fn think_time(field: &str, text: &str) -> Result<(Duration, Duration), FieldError> {
    let text = text.trim();
    let (min, max) = match text
        .strip_prefix("uniform(")
        .and_then(|t| t.strip_suffix(')'))
    {
        Some(inner) => {
            let (a, b) = inner.split_once(',').ok_or_else(|| {
                (
                    field.to_owned(),
                    format!("{text:?}: write uniform(MIN,MAX), e.g. uniform(100ms,300ms)"),
                )
            })?;
            (
                duration(field, Some(a), Duration::ZERO)?,
                duration(field, Some(b), Duration::ZERO)?,
            )
        }
        None => {
            let d = duration(field, Some(text), Duration::ZERO)?;
            (d, d)
        }
    };
    if min > max {
        return err(field, format!("{text:?}: the minimum exceeds the maximum"));
    }
    if max > Duration::from_secs(3600) {
        return err(field, format!("{text:?}: at most 1h"));
    }
    Ok((min, max))
}
