//! What each subcommand does, at the binary's edge: turn arguments into
//! library calls, print results, map failures to a message and exit code.

use crate::bench::{BenchOptions, run_bench_with};
use crate::cli::{
    AgentArgs, BenchArgs, CompareArgs, CompareFormat, CoordinatorArgs, DemoArgs, ReportArgs,
    ReportFormat, TargetArgs, ValidateArgs,
};
use crate::cluster::{ClusterOptions, run_search_with, run_series_with};
use crate::demo::{DemoOptions, run_demo_with};
use crate::events::{self, EventSender};
use crate::live;
use crate::metrics::{self, MetricsEndpoint};
use crate::report::{
    self, compare, csv, hlog, html,
    model::{RunReport, RunStatus},
    series, table,
};
use crate::tls::ServerTls;
use anyhow::{Context, bail};
use stampede_agent::{AgentConfig, ClientTls, TargetAllowlist};
use stampede_proto::security::SharedToken;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

mod standing;
pub use standing::{history, run};

/// Logs to stderr; `STAMPEDE_LOG` (or `RUST_LOG`) sets the filter, default `info`.
pub fn init_logging() {
    let filter = std::env::var("STAMPEDE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    // Colours only on a terminal: a Kubernetes Job's log wants plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(ansi)
        // Log lines go above the live view's block, not through it.
        .with_writer(live::LogWriter)
        .with_target(false)
        .try_init();
}

/// A token cancelled on Ctrl-C or SIGTERM.
fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::warn!("shutdown requested");
        t.cancel();
    });
    token
}

/// Prints a line on stdout at once (tests and scripts read it).
fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Who watches a run: the live view (unless `--quiet`) and whatever else
/// subscribes to its events before it starts.
struct Watch {
    sender: Option<EventSender>,
    live: Option<JoinHandle<()>>,
}

impl Watch {
    fn new(quiet: bool, stream: live::Stream) -> Self {
        let (sender, _) = events::channel();
        let live = (!quiet).then(|| live::spawn(sender.subscribe(), stream));
        Self {
            sender: Some(sender),
            live,
        }
    }

    /// The sender for the run: the run owns it, and its end (the sender
    /// dropped) ends the watchers.
    fn sender(&mut self) -> Option<EventSender> {
        let sender = self.sender.take();
        // Nobody subscribed: the run need not build events at all.
        sender.filter(|s| s.receiver_count() > 0)
    }

    /// Waits until the live view has shown the end of the run.
    async fn done(self) {
        if let Some(live) = self.live {
            let _ = live.await;
        }
    }
}

fn report_path(explicit: Option<PathBuf>, report: &RunReport) -> PathBuf {
    explicit.unwrap_or_else(|| PathBuf::from(format!("stampede-report-{}.json", report.run_id)))
}

/// Exit code of a run that completed but failed its thresholds (k6 uses the
/// same), so CI can tell "the target is too slow" from "the run broke".
pub const THRESHOLDS_FAILED_EXIT: u8 = 99;

/// A run whose thresholds did not all pass.
#[derive(Debug, thiserror::Error)]
#[error("{} threshold(s) failed: {}", .0.len(), .0.join("; "))]
pub struct ThresholdsFailed(pub Vec<String>);

/// A run that `on_agent_loss: fail` stopped (its report is written).
#[derive(Debug, thiserror::Error)]
#[error("the run failed: {0}")]
pub struct RunFailed(pub String);

fn finish(report: &RunReport, path: &Path, html_path: Option<&Path>) -> anyhow::Result<()> {
    report::write(report, path)?;
    announce(&table::render(report));
    announce(&format!("report: {}", path.display()));
    if let Some(html_path) = html_path {
        html::write(report, html_path)?;
        announce(&format!("html report: {}", html_path.display()));
    }
    if report.status == RunStatus::Failed {
        // Written and shown first: what the run measured is kept.
        return Err(RunFailed(report.notes.join("; ")).into());
    }
    let failed = report::thresholds::failures(report);
    if !failed.is_empty() {
        return Err(ThresholdsFailed(failed).into());
    }
    Ok(())
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number of requests per second");
    }
    announce(&format!(
        "stampede demo: built-in target, a coordinator and agents in us-east (5 ms), eu-west (40 ms), ap-south (120 ms); {} req/s for {}",
        args.rate,
        humantime::format_duration(args.duration)
    ));
    let options = DemoOptions {
        duration: args.duration,
        rate: args.rate,
    };
    let mut watch = Watch::new(args.quiet, live::Stream::Stdout);
    let run = run_demo_with(options, watch.sender(), shutdown_token()).await;
    watch.done().await;
    let (report, served) = run?;
    let path = report_path(args.report, &report);
    finish(&report, &path, args.html.as_deref())?;
    announce(&format!(
        "target served {served} requests; the report counts {}",
        report.global.requests
    ));
    Ok(())
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let url = url::Url::parse(&args.url).with_context(|| format!("{:?} is not a URL", args.url))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("{}: only http:// and https:// URLs are supported", args.url);
    }
    if (args.ca.is_some() || args.insecure) && url.scheme() != "https" {
        bail!("--ca and --insecure apply to https:// URLs");
    }
    if !(1..=1000).contains(&args.streams) {
        bail!("--streams must be between 1 and 1000");
    }
    let transport = stampede_agent::plan::Transport {
        protocol: if args.http2 {
            stampede_agent::plan::Protocol::Http2
        } else {
            stampede_agent::plan::Protocol::Http1
        },
        streams: args.streams,
        tls: (url.scheme() == "https")
            .then(|| -> anyhow::Result<_> {
                Ok(stampede_agent::plan::TargetTls {
                    ca_pem: match &args.ca {
                        Some(path) => stampede_proto::security::read_certificates(path)?,
                        None => Vec::new(),
                    },
                    insecure: args.insecure,
                    ..Default::default()
                })
            })
            .transpose()?,
        ..Default::default()
    };
    if args.connections == 0 {
        bail!("-c/--connections must be at least 1");
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("-R/--rate must be a positive number of requests per second");
        }
    }
    if args.duration.is_zero() {
        bail!("-d/--duration must be longer than zero");
    }
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .filter(|(n, _)| !n.is_empty())
                .with_context(|| format!("header {h:?} is not `Name: value`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = BenchOptions {
        url,
        method: args.method.to_ascii_uppercase(),
        headers,
        body: args.body.unwrap_or_default().into_bytes(),
        connections: args.connections,
        duration: args.duration,
        rate: args.rate,
        arrival: if args.poisson {
            crate::scenario::Arrival::Poisson {
                seed: args.seed.unwrap_or_else(crate::scenario::random_seed),
            }
        } else {
            crate::scenario::Arrival::Constant
        },
        threads: args.threads,
        timeout: args.timeout,
        transport,
    };
    // With --json, stdout is the JSON alone.
    let stream = if args.json {
        live::Stream::Stderr
    } else {
        live::Stream::Stdout
    };
    let mut watch = Watch::new(args.quiet, stream);
    let run = run_bench_with(options, watch.sender(), shutdown_token()).await;
    watch.done().await;
    let report = run?;
    if let Some(path) = &args.report {
        report::write(&report, path)?;
    }
    if let Some(path) = &args.html {
        html::write(&report, path)?;
    }
    if args.json {
        announce(&serde_json::to_string_pretty(&report)?);
    } else {
        announce(&table::render(&report));
    }
    Ok(())
}

/// The shared token, from `--token-file` or `STAMPEDE_TOKEN`.
fn shared_token(file: Option<&Path>) -> anyhow::Result<Option<SharedToken>> {
    let from_env = std::env::var("STAMPEDE_TOKEN").ok();
    Ok(match (file, from_env) {
        (Some(_), Some(_)) => {
            bail!("give the token once: --token-file or STAMPEDE_TOKEN, not both")
        }
        (Some(path), None) => Some(SharedToken::from_file(path)?),
        (None, Some(value)) => Some(SharedToken::new(&value, "STAMPEDE_TOKEN")?),
        (None, None) => None,
    })
}

/// Who may join this coordinator, from its flags; refuses plain text unless
/// asked for it by name.
fn cluster_options(args: &CoordinatorArgs) -> anyhow::Result<ClusterOptions> {
    if args.max_agents == 0 {
        bail!("--max-agents must be at least 1");
    }
    let token = shared_token(args.token_file.as_deref())?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::load(cert, key, args.tls_client_ca.as_deref())?),
        _ if args.insecure_plaintext => None,
        _ => bail!(
            "refusing to serve agents in plain text: give --tls-cert and --tls-key (and --tls-client-ca to require \
             agents' certificates), or --insecure-plaintext if the network is private or TLS ends in front of the coordinator"
        ),
    };
    match &tls {
        None => warn!(
            "INSECURE: serving agents over PLAIN TEXT (--insecure-plaintext): anyone who can reach this port can read \
             the run and{} join it",
            if token.is_some() {
                ", with the token,"
            } else {
                ""
            }
        ),
        Some(tls) if !tls.requires_client_certificates() && token.is_none() => warn!(
            "TLS without --tls-client-ca or a token: any client that trusts this certificate can join as an agent"
        ),
        Some(_) => {}
    }
    Ok(ClusterOptions {
        tls,
        token,
        max_agents: args.max_agents,
        events: None,
    })
}

pub async fn coordinator(args: CoordinatorArgs) -> anyhow::Result<()> {
    if args.serve {
        return standing::serve(args).await;
    }
    // Validate everything before listening: bad input sends no load.
    let mut options = cluster_options(&args)?;
    let Some(path) = &args.scenario else {
        bail!("give a scenario (--scenario FILE), or --serve to run submitted ones");
    };
    let scenario = crate::scenario::load(path)?;
    if let Some(gateway) = &args.pushgateway {
        metrics::http::push_url(gateway, "check")?;
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    announce(&format!(
        "coordinator listening on {}",
        listener.local_addr()?
    ));
    let mut watch = Watch::new(args.quiet, live::Stream::Stdout);
    let endpoint = match &args.metrics_listen {
        Some(addr) => Some(serve_metrics(addr, watch.sender.as_ref()).await?),
        None => None,
    };
    options.events = watch.sender();
    if let Some(spec) = scenario.search.clone() {
        let run = run_search_with(scenario, spec, listener, options, shutdown_token()).await;
        watch.done().await;
        if let Some(endpoint) = endpoint {
            endpoint.stop().await;
        }
        return finish_search(run?, args.report.as_deref(), args.html.as_deref());
    }
    let run = run_series_with(scenario, listener, options, shutdown_token()).await;
    watch.done().await;
    if let Some(endpoint) = endpoint {
        endpoint.stop().await;
    }
    let mut series = run?;
    let result = write_results(&mut series, &args);
    if let Some(gateway) = &args.pushgateway {
        for report in &series.reports {
            match metrics::push_summary(gateway, report).await {
                Ok(url) => info!(%url, "pushed the run's metrics"),
                // The run's own result stands: a push is a copy of it.
                Err(e) => error!("could not push the run's metrics: {e}"),
            }
        }
    }
    result
}

/// Serves `/metrics` on `addr` from the events of `sender`'s run.
async fn serve_metrics(
    addr: &str,
    sender: Option<&EventSender>,
) -> anyhow::Result<MetricsEndpoint> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-listen: cannot listen on {addr}"))?;
    let events = match sender {
        Some(sender) => sender.subscribe(),
        None => bail!("the run's events are already taken"),
    };
    let endpoint = MetricsEndpoint::start(listener, events)?;
    announce(&format!(
        "metrics listening on http://{}/metrics",
        endpoint.local_addr()
    ));
    Ok(endpoint)
}

/// Writes the reports of a run or a series and judges their thresholds.
fn write_results(series: &mut crate::run::Series, args: &CoordinatorArgs) -> anyhow::Result<()> {
    if series.reports.len() <= 1 && series.error.is_none() {
        if let Some(report) = series.reports.first() {
            let path = report_path(args.report.clone(), report);
            return finish(report, &path, args.html.as_deref());
        }
    }
    finish_series(series, args.report.as_deref(), args.html.as_deref())
}

/// `NAME-SUFFIX.EXT` next to `NAME.EXT`: the reports of a series or search.
fn numbered(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("stampede-report");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("json");
    path.with_file_name(format!("{stem}-{suffix}.{ext}"))
}

/// A search whose SLO fails even at its lowest level: exit code 99, like
/// failed thresholds (the target is too slow, the search itself worked).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SloViolatedAtMin(pub String);

/// Writes every probe's report (`NAME-1.json`, … after `--report NAME.json`)
/// and the search report (`NAME-search.json`) next to them, and with
/// `--html` the search's page; prints the table and the answer, and turns
/// the outcome into the exit code.
fn finish_search(
    mut search: crate::search::SearchRun,
    report: Option<&Path>,
    html_path: Option<&Path>,
) -> anyhow::Result<()> {
    let mut paths = Vec::new();
    for (i, run) in search.probes.iter().enumerate() {
        let path = match report {
            Some(p) => numbered(p, &(i + 1).to_string()),
            None => report_path(None, run),
        };
        report::write(run, &path)?;
        for probe in search
            .report
            .probes
            .iter_mut()
            .filter(|p| p.run_id == run.run_id)
        {
            probe.report = path.display().to_string();
        }
        paths.push(path);
    }
    let path = match report {
        Some(p) => numbered(p, "search"),
        None => PathBuf::from(format!("stampede-search-{}.json", search.report.search_id)),
    };
    let text = serde_json::to_string_pretty(&search.report)?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    announce(&crate::search::render::render(&search.report));
    match paths.as_slice() {
        [] => {}
        [one] => announce(&format!("probe report: {}", one.display())),
        [first, .., last] => announce(&format!(
            "probe reports: {} … {}",
            first.display(),
            last.display()
        )),
    }
    announce(&format!("search report: {}", path.display()));
    if let Some(html_path) = html_path {
        crate::search::html::write(&search.report, html_path)
            .with_context(|| format!("cannot write {}", html_path.display()))?;
        announce(&format!("html report: {}", html_path.display()));
    }
    if let Some(e) = search.error {
        return Err(e.into());
    }
    let legs = &search.report.legs;
    let line = |outcome: &str| {
        legs.iter()
            .filter(|l| l.outcome == outcome)
            .map(|l| l.summary.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    match search.report.outcome.as_str() {
        "generator_saturated" => bail!("{}", line("generator_saturated")),
        "slo_violated_at_min" => Err(SloViolatedAtMin(line("slo_violated_at_min")).into()),
        "stopped" => bail!("{}", line("stopped")),
        _ => Ok(()),
    }
}

/// Writes every run's report (`NAME-1.json`, `NAME-2.json`, … after
/// `--report NAME.json`), the series summary next to them, and judges every
/// run's thresholds. A run that could not run fails the command after the
/// reports of the runs before it are written.
fn finish_series(
    series: &mut crate::run::Series,
    report: Option<&Path>,
    html_path: Option<&Path>,
) -> anyhow::Result<()> {
    let mut paths = Vec::new();
    let mut failed = Vec::new();
    let mut run_failed = None;
    for (i, run) in series.reports.iter().enumerate() {
        let path = match report {
            Some(p) => numbered(p, &(i + 1).to_string()),
            None => report_path(None, run),
        };
        let html = html_path.map(|p| numbered(p, &(i + 1).to_string()));
        announce(&format!("\n== run {} of the series", i + 1));
        if let Err(e) = finish(run, &path, html.as_deref()) {
            match e.downcast::<ThresholdsFailed>() {
                Ok(ThresholdsFailed(list)) => {
                    failed.extend(list.into_iter().map(|t| format!("run {}: {t}", i + 1)))
                }
                // It ended the series; the summary is still written.
                Err(e) if e.is::<RunFailed>() => run_failed = Some(e),
                Err(e) => return Err(e),
            }
        }
        paths.push(path.display().to_string());
    }
    if !series.reports.is_empty() {
        let summary = series::summarize(&series.id, &series.reports, &paths);
        let path = match report {
            Some(p) => numbered(p, "series"),
            None => PathBuf::from(format!("stampede-series-{}.json", series.id)),
        };
        let text = serde_json::to_string_pretty(&summary)?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        announce(&format!("\n{}", series::render(&summary)));
        announce(&format!("series summary: {}", path.display()));
    }
    if let Some(e) = series.error.take() {
        return Err(e.into());
    }
    if let Some(e) = run_failed {
        return Err(e);
    }
    if !failed.is_empty() {
        return Err(ThresholdsFailed(failed).into());
    }
    Ok(())
}

/// The agent's transport security and allowlist, from its flags; refuses
/// plain text and an open allowlist unless asked for them by name.
fn agent_security(args: &AgentArgs, config: &mut AgentConfig) -> anyhow::Result<()> {
    config.token = shared_token(args.token_file.as_deref())?;
    config.tls = match &args.tls_ca {
        Some(ca) => {
            let identity = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
            Some(ClientTls::load(ca, identity, args.tls_server_name.clone())?)
        }
        None if args.insecure_plaintext => {
            warn!(
                "INSECURE: talking to the coordinator over PLAIN TEXT (--insecure-plaintext): the session{} can be read \
                 and the coordinator is not authenticated",
                if config.token.is_some() {
                    " and its token"
                } else {
                    ""
                }
            );
            None
        }
        None => bail!(
            "refusing to dial the coordinator in plain text: give --tls-ca (and --tls-cert/--tls-key for mTLS) with an \
             https:// URL, or --insecure-plaintext"
        ),
    };
    config.allowlist = if args.allow_any_target {
        warn!("--allow-any-target: this agent will load any target its coordinator names");
        TargetAllowlist::Any
    } else if args.allow_targets.is_empty() {
        bail!(
            "refusing to start without a target allowlist: give --allow-target HOST|*.SUFFIX|IP|CIDR (repeatable, or \
             STAMPEDE_ALLOW_TARGETS=a,b) for the targets this agent may load, or --allow-any-target"
        )
    } else {
        TargetAllowlist::Only(args.allow_targets.clone())
    };
    Ok(())
}

pub async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let mut config = AgentConfig::new(args.coordinator.clone(), args.region.clone());
    agent_security(&args, &mut config)?;
    config.zone = args.zone;
    config.once = args.once;
    config.histogram_encoding = args.histogram_encoding;
    if let Some(threads) = args.threads {
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        config.engine.threads = threads;
    }
    announce(&format!(
        "agent {} joining {} as region {}",
        config.agent_id, config.coordinator, config.region
    ));
    stampede_agent::run_agent(config, shutdown_token()).await?;
    Ok(())
}

pub async fn target(args: TargetArgs) -> anyhow::Result<()> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            use stampede_proto::security::{read_certificates, read_private_key};
            Some(stampede_target::ServerTls {
                cert_pem: read_certificates(cert)?,
                key_pem: read_private_key(key)?,
                client_ca_pem: args
                    .tls_client_ca
                    .as_deref()
                    .map(read_certificates)
                    .transpose()?,
            })
        }
        _ => None,
    };
    if args.kserve {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = stampede_target::KserveServer::bind(stampede_target::KserveConfig {
            listen: args.listen,
            default_delay: args.delay,
            region_delays: args.region_delays.into_iter().collect(),
            unavailable_share: args.grpc_unavailable,
            tls,
        })
        .await?;
        announce(&format!(
            "KServe v2 gRPC target listening on {scheme}://{}",
            server.local_addr()
        ));
        server.run(shutdown_token()).await?;
        return Ok(());
    }
    let config = stampede_target::TargetConfig {
        listen: args.listen,
        default_delay: args.delay,
        region_delays: args.region_delays.into_iter().collect(),
        body_bytes: args.body_bytes,
        stall: match (args.stall_after_requests, args.stall_for) {
            (Some(after_requests), Some(duration)) => Some(stampede_target::StallSpec {
                after_requests,
                duration,
            }),
            _ => None,
        },
        llm: stampede_target::LlmConfig {
            ttft: args.llm_ttft,
            token_interval: args.llm_token_interval,
            default_tokens: args.llm_tokens,
        },
        capacity: args.capacity,
        region_capacities: args.region_capacities.into_iter().collect(),
        tls,
    };
    let server = stampede_target::TargetServer::bind(config).await?;
    announce(&format!(
        "target listening on {}://{}",
        server.scheme(),
        server.local_addr()
    ));
    server.run(shutdown_token()).await?;
    Ok(())
}

pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    let format = if args.json {
        ReportFormat::Json
    } else {
        args.format
    };
    let report = report::read(&args.file)?;
    let text = match format {
        ReportFormat::Table => table::render(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Csv => csv::render(&report),
        ReportFormat::Html => {
            let Some(path) = &args.output else {
                bail!("--format html writes a file: give it with --output FILE.html");
            };
            html::write(&report, path)?;
            announce(&format!("html report: {}", path.display()));
            return Ok(());
        }
        ReportFormat::Hlog => {
            let Some(dir) = &args.output else {
                bail!(
                    "--format hlog writes one file per region and one global: give their directory with --output DIR"
                );
            };
            for path in hlog::write_dir(&report, dir)? {
                announce(&format!("interval log: {}", path.display()));
            }
            return Ok(());
        }
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}

pub fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let (base, new) = standing::compare_inputs(&args)?;
    let comparison = compare::compare(&base, &new, args.fail_on_regression);
    match args.format {
        CompareFormat::Table => announce(compare::render_table(&comparison).trim_end()),
        CompareFormat::Json => announce(&serde_json::to_string_pretty(&comparison)?),
    }
    if let (Some(pct), false) = (args.fail_on_regression, comparison.regressions.is_empty()) {
        let figures: Vec<String> = comparison
            .regressions
            .iter()
            .map(compare::Regression::describe)
            .collect();
        bail!("regression beyond {pct}%: {}", figures.join(", "));
    }
    Ok(())
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in &args.files {
        match crate::scenario::load(file) {
            Ok(scenario) => announce(&format!("ok: {}: {}", file.display(), scenario.describe())),
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} scenario file(s) are invalid",
            args.files.len()
        );
    }
    Ok(())
}
