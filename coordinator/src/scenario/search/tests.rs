use super::*;
use crate::scenario::{ScenarioError, load_with_env};
use std::collections::BTreeMap;
use std::io::Write;

const SEARCH: &str = r#"
name: capacity
target:
  url: http://127.0.0.1:8080/
load:
  model: open
regions:
  - name: us-east
  - name: eu-west
    agents: 2
  - name: ap-south
search:
  slo:
    - p99 < 250ms
    - "regions: error_rate < 0.1%"
  min: 100
  max: 10000
  step: 10s
  settle: 2s
  tolerance: 5%
"#;

fn load_text(text: &str) -> Result<Scenario, ScenarioError> {
    let mut f = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    load_with_env(f.path(), BTreeMap::new())
}

#[test]
fn a_search_is_read_and_its_first_probe_is_the_scenario() {
    let s = load_text(SEARCH).expect("valid");
    let spec = s.search.clone().expect("a search");
    assert_eq!((spec.min, spec.max, spec.start), (100.0, 10_000.0, 100.0));
    assert_eq!(spec.step, Duration::from_secs(10));
    assert_eq!(spec.settle, Duration::from_secs(2));
    assert_eq!(spec.tolerance, Tolerance::Relative(0.05));
    assert_eq!(spec.mode, SearchMode::Global);
    assert_eq!(spec.max_schedule_lag, DEFAULT_MAX_SCHEDULE_LAG);
    assert_eq!(spec.slo.len(), 2);
    assert!(!spec.slo[0].scoped && spec.slo[1].scoped);
    // The load is the first probe: 2 s settling, then 10 s at 100 req/s.
    assert!(matches!(s.load.model, Model::Open { rate, .. } if rate == 100.0));
    assert_eq!(s.load.duration, Duration::from_secs(12));
    assert_eq!(s.load.warmup(), Duration::from_secs(2));
    assert!(!s.load.staged);
    // The pool is sized for the top of the range.
    assert_eq!(s.load.connections, 100);
    assert_eq!(s.thresholds.len(), 2);
    assert!(
        s.describe().contains("capacity search of the cluster"),
        "{}",
        s.describe()
    );
}

#[test]
fn the_environment_overrides_search_fields() {
    let mut f = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    f.write_all(SEARCH.as_bytes()).expect("write");
    let env = [
        ("STAMPEDE_SEARCH__MAX", "5000"),
        ("STAMPEDE_SEARCH__TOLERANCE", "2%"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let spec = load_with_env(f.path(), env)
        .expect("valid")
        .search
        .expect("a search");
    assert_eq!(spec.max, 5000.0);
    assert_eq!(spec.tolerance, Tolerance::Relative(0.02));
}

#[test]
fn a_probe_holds_its_level_through_settling_and_step() {
    let s = load_text(SEARCH).expect("valid");
    let spec = s.search.clone().expect("a search");
    let probe = spec.probe(&s, None, 800.0);
    assert!(matches!(probe.load.model, Model::Open { rate, .. } if rate == 800.0));
    assert_eq!(probe.load.phases.len(), 2);
    assert!(
        probe
            .load
            .phases
            .iter()
            .all(|p| p.from == 800.0 && p.to == 800.0)
    );
    assert_eq!(probe.load.phases[0].kind, PhaseKind::Warmup);
    assert_eq!(
        probe.regions, s.regions,
        "the global search keeps the regions' weights"
    );
}

#[test]
fn per_region_probes_hold_the_other_regions_at_base() {
    let text = SEARCH.replace(
        "  tolerance: 5%\n",
        "  tolerance: 50\n  mode: per-region\n  base: 20\n",
    );
    let s = load_text(&text).expect("valid");
    let spec = s.search.clone().expect("a search");
    assert_eq!(spec.mode, SearchMode::PerRegion { base: 20.0 });
    assert_eq!(spec.tolerance, Tolerance::Absolute(50.0));
    assert_eq!(
        spec.legs(&s),
        vec![
            Some("us-east".to_owned()),
            Some("eu-west".to_owned()),
            Some("ap-south".to_owned())
        ]
    );
    let probe = spec.probe(&s, Some("eu-west"), 1000.0);
    assert!(matches!(probe.load.model, Model::Open { rate, .. } if rate == 1040.0));
    let fractions = crate::plan::region_fractions(&probe);
    assert!((fractions["eu-west"] * 1040.0 - 1000.0).abs() < 1e-9);
    assert!((fractions["ap-south"] * 1040.0 - 20.0).abs() < 1e-9);
    // An unscoped SLO line is judged on the region searched; a scoped one as written.
    assert_eq!(
        probe.thresholds[0].scope,
        ThresholdScope::Region("eu-west".into())
    );
    assert_eq!(probe.thresholds[1].scope, ThresholdScope::EachRegion);
}

#[test]
fn closed_model_searches_connections() {
    let text = SEARCH
        .replace("model: open", "model: closed")
        .replace("max: 10000", "max: 64")
        .replace("min: 100", "min: 4")
        .replace("tolerance: 5%", "tolerance: 2");
    let s = load_text(&text).expect("valid");
    assert_eq!(s.load.model, Model::Closed);
    assert_eq!(s.load.connections, 4);
    let spec = s.search.clone().expect("a search");
    assert_eq!(spec.unit, LevelUnit::Connections);
    assert_eq!(spec.probe(&s, None, 33.0).load.connections, 33);
}

#[test]
fn bad_searches_name_the_field_and_the_line() {
    let cases: &[(&str, &str, &str)] = &[
        // (replace in SEARCH, with, expected "field: why" fragment)
        (
            "  model: open\n",
            "  model: open\n  rate: 500\n",
            "load.rate: the search sets the rate",
        ),
        (
            "  model: open\n",
            "  model: open\n  duration: 30s\n",
            "load.duration: each probe lasts",
        ),
        (
            "  model: open\n",
            "  model: open\n  stages:\n    - kind: steady\n      duration: 1s\n      rate: 5\n",
            "load.stages: the search sets the load",
        ),
        (
            "search:\n",
            "repeat: 3\nsearch:\n",
            "repeat: a search runs as many probes",
        ),
        (
            "search:\n",
            "thresholds: [p99 < 1s]\nsearch:\n",
            "thresholds: a search judges each probe by search.slo",
        ),
        (
            "  - name: ap-south\n",
            "  - name: ap-south\n    rate: 50\n",
            "regions[2].rate: the search sets",
        ),
        (
            "    - p99 < 250ms\n",
            "    - p99 < soon\n",
            "search.slo[0]: \"p99 < soon\"",
        ),
        (
            "  min: 100\n",
            "  min: -1\n",
            "search.min: -1: must be a positive number of requests per second",
        ),
        ("  min: 100\n", "", "search.min: give a positive number"),
        (
            "  max: 10000\n",
            "  max: 50\n",
            "search.max: 50 is below search.min (100)",
        ),
        (
            "  min: 100\n",
            "  min: 100\n  start: 20000\n",
            "search.start: 20000 is outside",
        ),
        (
            "  step: 10s\n",
            "",
            "search.step: how long is each probe measured",
        ),
        (
            "  step: 10s\n",
            "  step: 1500ms\n",
            "search.step: 1s 500ms is not a whole number of intervals",
        ),
        (
            "  tolerance: 5%\n",
            "  tolerance: 150%\n",
            "search.tolerance: 150%: must be between",
        ),
        (
            "  tolerance: 5%\n",
            "  tolerance: lots\n",
            "search.tolerance: \"lots\": write a percentage",
        ),
        (
            "  tolerance: 5%\n",
            "  tolerance: 0.0000001\n  mode: per-region\n",
            "search.tolerance: this search may need",
        ),
        (
            "  tolerance: 5%\n",
            "  mode: sideways\n",
            "search.mode: \"sideways\": expected",
        ),
        (
            "  tolerance: 5%\n",
            "  base: 5\n",
            "search.base: base is the other regions' level",
        ),
        (
            "    agents: 2\n",
            "    agents: 2\n    weight: 3\n",
            "regions[1].weight: a per-region search",
        ),
        (
            "  settle: 2s\n",
            "  settle: 2s\n  jitter: 1s\n",
            "search.jitter: unknown field",
        ),
        (
            "  slo:\n    - p99 < 250ms\n    - \"regions: error_rate < 0.1%\"\n",
            "",
            "search.slo: list what each probe must meet",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(SEARCH.contains(from), "{from:?}");
        let mut text = SEARCH.replacen(from, to, 1);
        if expected.starts_with("regions[1].weight") {
            text.push_str("  mode: per-region\n");
        }
        let e = load_text(&text).expect_err(expected);
        let shown = format!("{}: {}", e.field, e.why);
        assert!(shown.contains(expected), "{expected:?} not in {shown:?}");
        if !["search.min: give", "search.step: how", "search.slo: list"]
            .iter()
            .any(|p| expected.starts_with(p))
        {
            assert!(e.line.is_some(), "{expected}: no line in {e}");
        }
    }
    let closed = SEARCH
        .replace("model: open", "model: closed")
        .replace("min: 100", "min: 3")
        .replace("max: 10000", "max: 50");
    let e = load_text(&closed).expect_err("3 connections for 4 agents");
    assert!(
        e.to_string()
            .contains("search.min: 3 connections cannot give each of the cluster's 4 agents one"),
        "{e}"
    );
    let e = load_text(&closed.replace("min: 3", "min: 4.5")).expect_err("fraction");
    assert!(
        e.to_string()
            .contains("a whole, positive number of connections"),
        "{e}"
    );
    let e =
        load_text(&closed.replace("min: 3", "min: 4\n  max_schedule_lag: 10ms")).expect_err("lag");
    assert!(e.to_string().contains("has no schedule to lag"), "{e}");
}
