//! The standing cluster's subcommands, at the binary's edge:
//! `coordinator --serve`, `run`, `history`, and `compare` by run id.

use super::{Watch, announce, cluster_options, finish, report_path, shared_token, shutdown_token};
use crate::cli::{Baseline, CompareArgs, CoordinatorArgs, HistoryArgs, RunArgs};
use crate::history::{self, History, HistoryFilter, RunState, parse_time};
use crate::live;
use crate::report::{self, model::RunReport, table::micros};
use crate::serve::api::SubmitRun;
use crate::serve::client::ApiClient;
use crate::serve::{self, ServeOptions};
use anyhow::{Context, bail};
use std::path::Path;
use tracing::warn;

pub async fn serve(args: CoordinatorArgs) -> anyhow::Result<()> {
    // Validate everything before listening.
    let cluster = cluster_options(&args)?;
    let Some(api_token) = cluster.token.clone() else {
        bail!(
            "--serve: the run API accepts scenarios to run, so it needs a token: give --token-file or STAMPEDE_TOKEN \
             (agents present the same token)"
        );
    };
    if args.trend_runs == 0 {
        bail!("--trend-runs must be at least 1");
    }
    let history = History::open(&args.history)?;
    let agents = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let api = tokio::net::TcpListener::bind(&args.api_listen)
        .await
        .with_context(|| format!("--api-listen: cannot listen on {}", args.api_listen))?;
    announce(&format!(
        "coordinator listening on {}",
        agents.local_addr()?
    ));
    announce(&format!(
        "run API listening on http://{}",
        api.local_addr()?
    ));
    announce(&format!("history: {}", args.history.display()));
    let options = ServeOptions {
        cluster,
        api_token,
        trend_runs: args.trend_runs,
    };
    serve::serve(agents, api, history, options, shutdown_token()).await?;
    Ok(())
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let Some(token) = shared_token(args.token_file.as_deref())? else {
        bail!("give the coordinator's token: --token-file or STAMPEDE_TOKEN");
    };
    let file = args.scenario.display().to_string();
    let text =
        std::fs::read_to_string(&args.scenario).with_context(|| format!("cannot read {file}"))?;
    // The coordinator checks it too; checking here fails fast, with the
    // same file:line errors.
    crate::scenario::load_text(&file, &text)?;
    let client = ApiClient::new(args.coordinator.clone(), token)?;
    let submitted = client
        .submit(&SubmitRun {
            scenario_file: file,
            scenario_text: text,
            labels: args.labels.clone(),
            git_sha: args.git_sha.clone(),
        })
        .await?;
    let id = submitted.id;
    announce(&format!("run {id} submitted ({})", submitted.state));

    let mut watch = Watch::new(args.quiet, live::Stream::Stdout);
    let (sender, _) = crate::events::channel();
    let sender = watch.sender().unwrap_or(sender);
    let cancel = shutdown_token();
    let follow = client.follow(&id, sender);
    tokio::pin!(follow);
    let followed = tokio::select! {
        followed = &mut follow => followed,
        _ = cancel.cancelled() => {
            warn!(run = %id, "aborting the run on the coordinator");
            if let Err(e) = client.abort(&id).await {
                warn!(run = %id, error = %e, "could not abort the run");
            }
            follow.await
        }
    };
    watch.done().await;
    followed?;

    let row = client.run(&id).await?;
    let state = RunState::parse(&row.state);
    if !state.is_some_and(RunState::is_final) {
        bail!(
            "run {id}: the event stream ended while the run is still {}; follow it with GET /api/v1/runs/{id}",
            row.state
        );
    }
    if state == Some(RunState::Error) {
        bail!(
            "run {id} could not run: {}",
            row.error.as_deref().unwrap_or("no reason given")
        );
    }
    let report = client
        .report(&id)
        .await
        .with_context(|| format!("run {id} ended {} without a report", row.state))?;
    if let Some(path) = &args.html {
        let page = client.report_html(&id).await?;
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
        announce(&format!("html report: {}", path.display()));
    }
    let path = report_path(args.report.clone(), &report);
    let judged = finish(&report, &path, None);
    if state == Some(RunState::Aborted) {
        bail!(
            "run {id} was aborted{}",
            row.error.map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    judged
}

pub fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let history = open_existing(&args.history)?;
    let now = history::now_ms();
    let time = |flag: &str, text: &Option<String>| -> anyhow::Result<Option<i64>> {
        text.as_deref()
            .map(|t| parse_time(t, now).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
            .transpose()
    };
    let filter = HistoryFilter {
        scenario: args.scenario.clone(),
        labels: args.labels.clone(),
        since_ms: time("since", &args.since)?,
        until_ms: time("until", &args.until)?,
        state: match &args.state {
            Some(s) => Some(RunState::parse(s).with_context(|| {
                format!("--state {s:?}: give queued, running, passed, failed, aborted or error")
            })?),
            None => None,
        },
        limit: Some(args.limit),
    };
    let rows = history.list(&filter)?;
    if args.json {
        announce(&serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let mut out = format!(
        "{:<36}  {:<20}  {:<20}  {:<8}  {:>10}  {:>9}  {:>9}  {:>7}  {:<10}  labels\n",
        "run", "submitted", "scenario", "state", "rps", "p50", "p99", "errors", "git"
    );
    for r in &rows {
        let (rps, p50, p99, errors) = match r.summary {
            Some(s) => (
                format!("{:.1}", s.achieved_rps),
                micros(s.p50_us),
                micros(s.p99_us),
                format!("{:.2}%", s.error_rate * 100.0),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let at = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(r.submitted_at_ms.max(0) as u64);
        out += &format!(
            "{:<36}  {:<20}  {:<20}  {:<8}  {:>10}  {:>9}  {:>9}  {:>7}  {:<10}  {}\n",
            r.id,
            humantime::format_rfc3339_seconds(at).to_string(),
            r.scenario_name,
            r.state,
            rps,
            p50,
            p99,
            errors,
            r.git_sha
                .as_deref()
                .unwrap_or("")
                .get(..10)
                .unwrap_or(r.git_sha.as_deref().unwrap_or("")),
            r.labels.join(",")
        );
    }
    if rows.is_empty() {
        out += "(no runs match)\n";
    }
    announce(out.trim_end());
    Ok(())
}

/// Opens a history that must already exist (reading one never creates it).
fn open_existing(path: &Path) -> anyhow::Result<History> {
    if !path.exists() {
        bail!(
            "{}: no history database here (a standing coordinator writes it: `coordinator --serve --history PATH`)",
            path.display()
        );
    }
    Ok(History::open(path)?)
}

/// The two reports `compare` compares: files, run ids of `--history`, or
/// the judged run and its last passing baseline.
pub fn compare_inputs(args: &CompareArgs) -> anyhow::Result<(RunReport, RunReport)> {
    let history = args.history.as_deref().map(open_existing).transpose()?;
    let load = |what: &str| -> anyhow::Result<RunReport> {
        let path = Path::new(what);
        if path.exists() {
            return Ok(report::read(path)?);
        }
        let Some(history) = &history else {
            bail!("{what}: no such report file (to compare runs by id, give --history PATH)");
        };
        history
            .report(what)?
            .with_context(|| format!("run {what} has no report (it did not finish)"))
    };
    match args.baseline {
        None => {
            let Some(new) = &args.new else {
                bail!("give two reports (files or run ids), or one with --baseline last-passing");
            };
            Ok((load(&args.base)?, load(new)?))
        }
        Some(Baseline::LastPassing) => {
            if args.new.is_some() {
                bail!("--baseline picks the baseline: give only the run to judge");
            }
            let Some(history) = &history else {
                bail!("--baseline needs --history PATH");
            };
            let judged = load(&args.base)?;
            let row = history.get(&args.base)?;
            let labels = if args.labels.is_empty() {
                row.as_ref().map(|r| r.labels.clone()).unwrap_or_default()
            } else {
                args.labels.clone()
            };
            let before = row.as_ref().map(|r| r.submitted_at_ms);
            let baseline = history
                .last_passing(&judged.scenario.name, &labels, before, Some(&args.base))?
                .with_context(|| {
                    format!(
                        "no passing run of scenario {:?}{} before this one in {}",
                        judged.scenario.name,
                        if labels.is_empty() {
                            String::new()
                        } else {
                            format!(" with labels {}", labels.join(","))
                        },
                        args.history.as_deref().unwrap_or(Path::new("")).display()
                    )
                })?;
            announce(&format!("baseline: run {} (last passing)", baseline.id));
            let base = history
                .report(&baseline.id)?
                .with_context(|| format!("run {} has no report", baseline.id))?;
            Ok((base, judged))
        }
    }
}
