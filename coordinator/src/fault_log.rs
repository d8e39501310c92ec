//! A run's record of what went wrong: every fault gets its log line when it
//! happens, a structured entry for the report (`RunReport.faults`) and, when
//! it leaves the run's figures short, a note (`RunReport.notes`) that makes
//! the run partial.

use crate::report::build::unix_nanos_now;
use crate::report::model::Fault;
use std::collections::BTreeMap;
use tracing::{info, warn};
use uuid::Uuid;

/// Stale or foreign interval reports are counted, not listed one by one: an
/// agent of an earlier run can send many.
#[derive(Debug, Default)]
struct Refusals {
    first_at_s: f64,
    count: u64,
}

/// Reports of one agent whose phase histograms were left out, counted.
#[derive(Debug)]
struct DroppedPhases {
    first_at_s: f64,
    region: String,
    first_error: String,
    count: u64,
}

#[derive(Debug, Default)]
pub struct FaultLog {
    /// The run's common start; times are given from it.
    start_unix_nanos: Option<i64>,
    faults: Vec<Fault>,
    notes: Vec<String>,
    refused: BTreeMap<(String, &'static str), Refusals>,
    dropped_phases: BTreeMap<Uuid, DroppedPhases>,
    failed: bool,
}

impl FaultLog {
    /// From here on, faults are timed from this start.
    pub fn started(&mut self, start_unix_nanos: i64) {
        self.start_unix_nanos = Some(start_unix_nanos);
    }

    /// Seconds since the run's start (negative before it; 0 before a start
    /// time was set).
    pub fn now_s(&self) -> f64 {
        self.start_unix_nanos
            .map_or(0.0, |start| (unix_nanos_now() - start) as f64 / 1e9)
    }

    fn push(&mut self, kind: &str, agent: Option<(Uuid, &str)>, detail: String) -> f64 {
        let at_s = self.now_s();
        self.faults.push(Fault {
            at_s,
            kind: kind.to_owned(),
            agent: agent.map(|(id, _)| id.to_string()),
            region: agent.map(|(_, region)| region.to_owned()),
            detail,
        });
        at_s
    }

    /// The agent's session ended mid-run. Returns when, from the start.
    pub fn agent_lost(&mut self, agent: Uuid, region: &str) -> f64 {
        warn!(%agent, %region, "agent lost mid-run (its session ended); what it reported is kept");
        self.notes
            .push(format!("agent {agent} ({region}) was lost mid-run"));
        self.push(
            "agent_lost",
            Some((agent, region)),
            "its session ended mid-run; what it reported is kept".into(),
        )
    }

    /// Nothing from the agent for `silent_s` seconds, though its session may
    /// look open. Returns when, from the start.
    pub fn agent_silent(&mut self, agent: Uuid, region: &str, silent_s: f64) -> f64 {
        warn!(%agent, %region, silent_s, "agent silent past agent_loss_timeout: declared lost; what it reported is kept");
        self.notes.push(format!(
            "agent {agent} ({region}) was lost mid-run: silent for {silent_s:.1}s"
        ));
        self.push(
            "agent_silent",
            Some((agent, region)),
            format!(
                "no report or heartbeat for {silent_s:.1}s (agent_loss_timeout); told to stop; what it reported is kept"
            ),
        )
    }

    pub fn no_final_report(&mut self, agent: Uuid, region: &str) {
        warn!(%agent, %region, "no final report in time");
        self.notes.push(format!(
            "agent {agent} ({region}) sent no final report in time"
        ));
        self.push(
            "no_final_report",
            Some((agent, region)),
            "no final report before the run's deadline".into(),
        );
    }

    pub fn agent_error(&mut self, agent: Uuid, region: &str, error: &str) {
        warn!(%agent, %region, %error, "agent ended with an error");
        self.notes
            .push(format!("agent {agent} ended with an error: {error}"));
        self.push("agent_error", Some((agent, region)), error.to_owned());
    }

    /// A stop on request (Ctrl-C, SIGTERM, an API call).
    pub fn stopped(&mut self) {
        warn!("stopping the run on request; collecting what agents have");
        self.notes
            .push("the run was stopped before its end".to_owned());
        self.push("stopped", None, "stopped by the operator".into());
    }

    /// `on_agent_loss: fail`: the loss of `agent` ends the run.
    pub fn run_failed(&mut self, agent: Uuid, region: &str) {
        warn!(%agent, %region, "on_agent_loss is `fail`: stopping the run on every agent");
        self.failed = true;
        self.notes.push(format!(
            "the run was stopped because agent {agent} ({region}) was lost (on_agent_loss: fail)"
        ));
        self.push(
            "run_failed",
            Some((agent, region)),
            "on_agent_loss: fail — every agent was told to stop".into(),
        );
    }

    /// `on_agent_loss: redistribute`: `survivors` agents of its region took
    /// over `agent`'s share from `begin_s`.
    pub fn redistributed(&mut self, agent: Uuid, region: &str, begin_s: f64, survivors: usize) {
        info!(%agent, %region, begin_s, survivors, "a lost agent's share is taken over by its region's other agents");
        self.push(
            "redistributed",
            Some((agent, region)),
            format!(
                "its share was taken over by {survivors} agent(s) of {region} from {begin_s:+.1}s"
            ),
        );
    }

    /// `on_agent_loss: redistribute` with nobody to take the share over.
    pub fn not_redistributed(&mut self, agent: Uuid, region: &str, why: &str) {
        warn!(%agent, %region, why, "a lost agent's share is not taken over");
        self.push(
            "redistributed",
            Some((agent, region)),
            format!("its share was not taken over: {why}"),
        );
    }

    /// `late_joiners: take_over`: `joiner` took over `lost`'s share.
    pub fn late_join(&mut self, joiner: Uuid, region: &str, lost: Uuid, begin_s: f64) {
        info!(agent = %joiner, %region, %lost, begin_s, "a late agent takes over a lost agent's share");
        self.push(
            "late_join",
            Some((joiner, region)),
            format!("joined mid-run and took over agent {lost}'s share from {begin_s:+.1}s"),
        );
    }

    /// An interval report the run will not merge. Logged each time, listed
    /// once per agent and reason (with a count) in the report.
    pub fn report_refused(&mut self, agent: Uuid, why: &'static str) {
        warn!(%agent, why, "interval report refused");
        let at_s = self.now_s();
        let entry = self
            .refused
            .entry((agent.to_string(), why))
            .or_insert(Refusals {
                first_at_s: at_s,
                count: 0,
            });
        entry.count += 1;
    }

    /// A merged report of `agent` (interval `index`) whose phase
    /// histograms did not decode once its interval had closed: its phase
    /// timings are left out of the phase figures, the rest of it stands.
    /// Logged each time, listed once per agent (with a count) in the
    /// report. Like a refused report, it does not make the run partial.
    pub fn phases_dropped(&mut self, agent: Uuid, region: &str, index: u32, error: &str) {
        warn!(%agent, %region, interval = index, %error, "request phase histograms malformed: this report's phase timings are left out");
        let at_s = self.now_s();
        self.dropped_phases
            .entry(agent)
            .or_insert_with(|| DroppedPhases {
                first_at_s: at_s,
                region: region.to_owned(),
                first_error: error.to_owned(),
                count: 0,
            })
            .count += 1;
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The report's notes and faults (refusals folded in, in time order).
    pub fn finish(mut self) -> (Vec<String>, Vec<Fault>) {
        for ((agent, why), r) in std::mem::take(&mut self.refused) {
            self.faults.push(Fault {
                at_s: r.first_at_s,
                kind: "report_refused".into(),
                agent: Some(agent),
                region: None,
                detail: format!("{why} ({} report(s) refused)", r.count),
            });
        }
        for (agent, d) in std::mem::take(&mut self.dropped_phases) {
            self.faults.push(Fault {
                at_s: d.first_at_s,
                kind: "phases_dropped".into(),
                agent: Some(agent.to_string()),
                region: Some(d.region),
                detail: format!(
                    "request phase histograms did not decode ({}); {} report(s)' phase timings left out of the phase figures, their other figures merged",
                    d.first_error, d.count
                ),
            });
        }
        self.faults.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        (self.notes, self.faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_folded_into_one_fault_per_agent_and_reason() {
        let mut log = FaultLog::default();
        let agent = Uuid::new_v4();
        for _ in 0..3 {
            log.report_refused(agent, "interval report for another run");
        }
        log.report_refused(agent, "malformed interval report");
        let (notes, faults) = log.finish();
        assert!(
            notes.is_empty(),
            "refused reports alone do not make a run partial"
        );
        assert_eq!(faults.len(), 2);
        let another = faults
            .iter()
            .find(|f| f.detail.starts_with("interval report for another run"))
            .expect("the other-run refusals");
        assert!(another.detail.contains("3 report(s)"), "{}", another.detail);
        assert_eq!(another.agent.as_deref(), Some(agent.to_string().as_str()));
    }

    #[test]
    fn dropped_phases_are_one_fault_per_agent_with_a_count_and_no_note() {
        let mut log = FaultLog::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        log.phases_dropped(a, "eu-west", 3, "wait phase histogram: truncated varint");
        log.phases_dropped(a, "eu-west", 4, "tls phase histogram: unknown cookie");
        log.phases_dropped(b, "us-east", 4, "dns phase histogram: unknown cookie");
        let (notes, faults) = log.finish();
        assert!(notes.is_empty(), "the run's other figures are whole");
        assert_eq!(faults.len(), 2);
        let fa = faults
            .iter()
            .find(|f| f.agent.as_deref() == Some(a.to_string().as_str()))
            .expect("a's fault");
        assert_eq!(fa.kind, "phases_dropped");
        assert_eq!(fa.region.as_deref(), Some("eu-west"));
        assert!(fa.detail.contains("2 report(s)"), "{}", fa.detail);
        assert!(
            fa.detail.contains("wait phase histogram: truncated varint"),
            "{}",
            fa.detail
        );
    }

    #[test]
    fn a_policy_failure_marks_the_log_failed_and_notes_why() {
        let mut log = FaultLog::default();
        let agent = Uuid::new_v4();
        log.agent_lost(agent, "eu-west");
        assert!(!log.failed());
        log.run_failed(agent, "eu-west");
        assert!(log.failed());
        let (notes, faults) = log.finish();
        assert_eq!(notes.len(), 2);
        let kinds: Vec<&str> = faults.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, ["agent_lost", "run_failed"]);
        assert!(
            faults
                .iter()
                .all(|f| f.region.as_deref() == Some("eu-west"))
        );
    }
}
