//! The JSON report of a real (short) demo run matches
//! `docs/report.schema.json`, the schema is strict enough to catch a wrong
//! report, and a saved report reads back with the same latency figures.

mod support;

use jsonschema::{Draft, Validator};
use serde_json::{Value, json};
use stampede_coordinator::demo::{DemoOptions, run_demo};
use stampede_coordinator::report::{self, model::RunReport};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/report.schema.json")
}

fn load_schema() -> Value {
    let path = schema_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn validator(schema: &Value) -> Validator {
    // The schema must itself be a valid draft 2020-12 schema.
    if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
        panic!(
            "the schema is not a valid draft 2020-12 schema: {e} (at {})",
            e.instance_path()
        );
    }
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("the schema does not compile: {e}"))
}

/// Every validation error, one per line, with where it is in the report.
fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| {
            format!(
                "at {:?} (schema {}): {e}",
                e.instance_path().as_str(),
                e.schema_path().as_str()
            )
        })
        .collect()
}

/// A copy of `report` changed by `edit` must fail validation.
fn assert_rejected(
    validator: &Validator,
    report: &Value,
    what: &str,
    edit: impl FnOnce(&mut Value),
) {
    let mut bad = report.clone();
    edit(&mut bad);
    assert!(
        !validator.is_valid(&bad),
        "the schema accepts a report with {what}"
    );
}

fn assert_schema_strict(validator: &Validator, report: &Value) {
    assert_rejected(validator, report, "an unknown top-level field", |r| {
        r["surprise"] = json!(true);
    });
    assert_rejected(validator, report, "global.requests as a string", |r| {
        r["global"]["requests"] = json!("3000");
    });
    assert_rejected(validator, report, "status \"bogus\"", |r| {
        r["status"] = json!("bogus");
    });
    // The flattened scopes are closed too.
    assert_rejected(validator, report, "an unknown field in global", |r| {
        r["global"]["surprise"] = json!(1);
    });
    assert_rejected(validator, report, "an unknown field in a region", |r| {
        r["regions"][0]["surprise"] = json!(1);
    });
    assert_rejected(validator, report, "an unknown field in an agent", |r| {
        r["agents"][0]["surprise"] = json!(1);
    });
    assert_rejected(validator, report, "a region without its requests", |r| {
        r["regions"][0]
            .as_object_mut()
            .expect("a region is an object")
            .remove("requests");
    });
    assert_rejected(validator, report, "a negative count", |r| {
        r["global"]["errors"]["timeout"] = json!(-1);
    });
    assert_rejected(validator, report, "a non-numeric status code key", |r| {
        r["global"]["status_codes"]["OK"] = json!(1);
    });
    assert_rejected(
        validator,
        report,
        "a gRPC code that is not a code name",
        |r| {
            r["global"]["grpc_codes"] = json!({ "14": 1 });
        },
    );
    assert_rejected(validator, report, "a histogram that is not base64", |r| {
        r["global"]["latency_histogram"] = json!("not base64!");
    });
    assert_rejected(validator, report, "an agent state \"asleep\"", |r| {
        r["agents"][0]["state"] = json!("asleep");
    });
    // Formats are checked, not only the patterns that go with them.
    assert_rejected(
        validator,
        report,
        "started_at that is not a date-time",
        |r| {
            r["started_at"] = json!("2026-13-45T99:00:00Z");
        },
    );
    assert_rejected(validator, report, "a run_id that is not a uuid", |r| {
        r["run_id"] = json!("run-1");
    });
    assert_rejected(validator, report, "a complete run with notes", |r| {
        r["notes"] = json!(["agent x was lost mid-run"]);
    });
}

/// A saved report reads back with latency figures recomputed from its
/// histograms; merging is exact, so they equal the ones it was written with.
fn assert_round_trip(report: &RunReport) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("report.json");
    report::write(report, &path).expect("report writes");
    let back = report::read(&path).expect("report reads back");

    assert_eq!(back.global.latency_us, report.global.latency_us, "global");
    assert_eq!(
        back.global.error_latency_us, report.global.error_latency_us,
        "global errors"
    );
    assert_eq!(back.regions.len(), report.regions.len());
    for (b, r) in back.regions.iter().zip(&report.regions) {
        assert_eq!(b.name, r.name);
        assert_eq!(
            b.summary.latency_us, r.summary.latency_us,
            "region {}",
            r.name
        );
        assert_eq!(
            b.summary.error_latency_us, r.summary.error_latency_us,
            "region {} errors",
            r.name
        );
    }
    assert_eq!(back.agents.len(), report.agents.len());
    for (b, a) in back.agents.iter().zip(&report.agents) {
        assert_eq!(b.id, a.id);
        assert_eq!(b.summary.latency_us, a.summary.latency_us, "agent {}", a.id);
        assert_eq!(
            b.summary.error_latency_us, a.summary.error_latency_us,
            "agent {} errors",
            a.id
        );
    }
}

fn assert_demo_invariants(report: &RunReport, served: u64) {
    let names: Vec<&str> = report.regions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["us-east", "eu-west", "ap-south"]);

    let by_region: u64 = report.regions.iter().map(|r| r.summary.requests).sum();
    assert!(report.global.requests > 0, "the demo completed no requests");
    assert_eq!(
        report.global.requests, by_region,
        "global requests differ from the sum of the regions'"
    );
    assert_eq!(
        report.global.requests, served,
        "the report's requests differ from what the target served"
    );

    let p50 = |name: &str| {
        report
            .regions
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.summary.latency_us.p50)
            .unwrap_or_else(|| panic!("no region {name}"))
    };
    let (us, eu, ap) = (p50("us-east"), p50("eu-west"), p50("ap-south"));
    assert!(
        us < eu && eu < ap,
        "p50 latency is not ordered by region delay: us-east {us} µs, eu-west {eu} µs, ap-south {ap} µs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_report_matches_the_schema() {
    let schema = load_schema();
    let validator = validator(&schema);

    let (report, served) = run_demo(
        DemoOptions {
            duration: Duration::from_secs(2),
            rate: 300.0,
        },
        CancellationToken::new(),
    )
    .await
    .expect("the demo runs");

    let instance = serde_json::to_value(&report).expect("the report serializes");
    let found = errors(&validator, &instance);
    assert!(
        found.is_empty(),
        "the demo report does not match {}:\n{}",
        schema_path().display(),
        found.join("\n")
    );

    assert_schema_strict(&validator, &instance);
    assert_round_trip(&report);
    assert_demo_invariants(&report, served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_report_matches_the_schema() {
    use stampede_coordinator::scenario::{Arrival, Load, Model, Phase, PhaseKind};
    let schema = load_schema();
    let validator = validator(&schema);
    let target = support::InProcessTarget::start(stampede_target::TargetConfig::default()).await;
    let phase = |kind, secs, level| Phase {
        kind,
        stage: 0,
        duration: Duration::from_secs(secs),
        from: level,
        to: level,
    };
    let mut load = Load::constant(
        Model::Open {
            rate: 100.0,
            arrival: Arrival::Constant,
        },
        4,
        Duration::from_secs(2),
    );
    load.phases = vec![
        phase(PhaseKind::Warmup, 1, 50.0),
        phase(PhaseKind::Steady, 1, 100.0),
    ];
    load.staged = true;
    let scenario = support::one_region_scenario("staged-schema", target.url.clone(), load);
    let report = support::run_with_agents(scenario, &["local"]).await;
    target.stop().await;

    let instance = serde_json::to_value(&report).expect("the report serializes");
    let found = errors(&validator, &instance);
    assert!(found.is_empty(), "{}", found.join("\n"));
    assert_eq!(report.stages.len(), 2);
    assert_eq!(report.scenario.warmup_s, 1.0);
    assert_round_trip(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mix_report_matches_the_schema() {
    let schema = load_schema();
    let validator = validator(&schema);
    let target = support::InProcessTarget::start(stampede_target::TargetConfig::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ids.csv"), "id\n1\n2\n3\n").expect("write data");
    let path = dir.path().join("mix.yaml");
    std::fs::write(
        &path,
        format!(
            "target:\n  url: {}\nrequests:\n  - name: a\n    url: \"/items/{{{{id}}}}\"\n  - name: b\n    weight: 2\ndata:\n  file: ids.csv\nload:\n  model: open\n  rate: 50\n  duration: 1s\nregions:\n  - name: local\nstart_delay: 300ms\n",
            target.url
        ),
    )
    .expect("write scenario");
    let scenario =
        stampede_coordinator::scenario::load_with_env(&path, Default::default()).expect("valid");
    let report = support::run_with_agents(scenario, &["local"]).await;
    target.stop().await;

    let instance = serde_json::to_value(&report).expect("the report serializes");
    let found = errors(&validator, &instance);
    assert!(found.is_empty(), "{}", found.join("\n"));
    assert_eq!(report.requests.len(), 2);
    assert_eq!(report.scenario.data_file.as_deref(), Some("ids.csv"));
    assert_round_trip(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_report_matches_the_schema() {
    let schema = load_schema();
    let validator = validator(&schema);
    let target = support::InProcessTarget::start(stampede_target::TargetConfig {
        llm: stampede_target::LlmConfig {
            ttft: Duration::from_millis(20),
            token_interval: Duration::from_millis(2),
            default_tokens: 5,
        },
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("llm.yaml");
    std::fs::write(
        &path,
        format!(
            "target:\n  url: {}\nrequests:\n  - name: c\n    method: POST\n    url: /v1/completions\n    body: '{{\"stream\": true}}'\nllm:\n  goodput:\n    ttft: 1s\ncost:\n  hourly_usd: 3.6\n  instances: 2\nload:\n  model: open\n  rate: 20\n  duration: 1s\nregions:\n  - name: local\nstart_delay: 300ms\n",
            target.url
        ),
    )
    .expect("write scenario");
    let scenario =
        stampede_coordinator::scenario::load_with_env(&path, Default::default()).expect("valid");
    let report = support::run_with_agents(scenario, &["local"]).await;
    target.stop().await;

    let instance = serde_json::to_value(&report).expect("the report serializes");
    let found = errors(&validator, &instance);
    assert!(found.is_empty(), "{}", found.join("\n"));
    assert!(report.global.llm.is_some());
    // Two instances at $3.60/h cost $0.002 per second, over what was served.
    let cost = report.cost.as_ref().expect("cost");
    let per_request = cost.usd_per_request.expect("requests completed");
    assert!((per_request - 0.002 / report.global.achieved_rps).abs() < 1e-12);
    let tokens = report
        .global
        .llm
        .as_ref()
        .map(|l| l.output_tokens_per_second)
        .unwrap_or(0.0);
    let per_million_tokens = cost.usd_per_million_output_tokens.expect("tokens");
    assert!((per_million_tokens - 0.002 / tokens * 1e6).abs() < 1e-6);
    assert!(stampede_coordinator::report::table::render(&report).contains("per 1M output tokens"));
    assert_round_trip(&report);
}
