use super::*;
use stampede_agent::plan::DnsPolicy;
use std::io::Write;

const GOOD: &str = r#"
name: checkout
target:
  url: http://127.0.0.1:8080/api
  headers:
    accept: application/json
  region_urls:
    eu-west: http://127.0.0.1:8081/api
load:
  model: open
  rate: 3000
  duration: 15s
regions:
  - name: us-east
    agents: 2
    weight: 2
  - name: eu-west
  - name: ap-south
    rate: 500
"#;

fn write(ext: &str, text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(ext)
        .tempfile()
        .expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

fn load_text(text: &str) -> Result<Scenario, ScenarioError> {
    let f = write(".yaml", text);
    load_with_env(f.path(), BTreeMap::new())
}

#[test]
fn reads_a_good_scenario_with_defaults() {
    let s = load_text(GOOD).expect("valid");
    assert_eq!(s.name, "checkout");
    assert_eq!(
        s.load.model,
        Model::Open {
            rate: 3000.0,
            arrival: Arrival::Constant
        }
    );
    assert_eq!(s.load.interval, Duration::from_secs(1));
    assert_eq!(s.target.method, "GET");
    assert_eq!(s.total_agents(), 4);
    assert_eq!(s.target.url_for("eu-west").port(), Some(8081));
    assert_eq!(s.target.url_for("us-east").port(), Some(8080));
    assert_eq!(s.regions[2].share, Share::Rate(500.0));
    assert_eq!(s.load.connections, 30);
}

#[test]
fn reads_toml_too() {
    let f = write(
        ".toml",
        "[target]\nurl = \"http://127.0.0.1:1/\"\n[load]\nmodel = \"closed\"\nconnections = 4\nduration = \"2s\"\n[[regions]]\nname = \"local\"\n",
    );
    let s = load_with_env(f.path(), BTreeMap::new()).expect("valid");
    assert_eq!(s.load.model, Model::Closed);
    assert_eq!(s.load.connections, 4);
}

#[test]
fn environment_overrides_fields() {
    let f = write(".yaml", GOOD);
    let env = BTreeMap::from([
        ("STAMPEDE_LOAD__RATE".to_owned(), "6000".to_owned()),
        ("STAMPEDE_LOAD__DURATION".to_owned(), "1m".to_owned()),
        // Not a scenario key: ignored, not an "unknown field".
        ("STAMPEDE_LOG".to_owned(), "debug".to_owned()),
    ]);
    let s = load_with_env(f.path(), env).expect("valid");
    assert_eq!(
        s.load.model,
        Model::Open {
            rate: 6000.0,
            arrival: Arrival::Constant
        }
    );
    assert_eq!(s.load.duration, Duration::from_secs(60));
}

/// Each bad input fails with its own field and reason, naming the file.
#[test]
fn bad_inputs_name_file_field_and_why() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "unknown field",
            "load:\n",
            "load:\n  bogus: 1\n",
            "unknown field `bogus`",
        ),
        ("negative rate", "rate: 3000", "rate: -5", "load.rate"),
        (
            "unknown region",
            "eu-west: http://127.0.0.1:8081/api",
            "eu-wset: http://127.0.0.1:8081/api",
            "unknown region \"eu-wset\"",
        ),
        (
            "bad duration",
            "duration: 15s",
            "duration: soon",
            "load.duration",
        ),
        ("bad model", "model: open", "model: ajar", "load.model"),
        (
            "bad scheme",
            "url: http://127.0.0.1:8080/api",
            "url: ftp://127.0.0.1/",
            "target.url",
        ),
        ("zero agents", "agents: 2", "agents: 0", "regions[0].agents"),
        (
            "duplicate region",
            "name: ap-south",
            "name: us-east",
            "listed twice",
        ),
        (
            "bad region name",
            "name: ap-south",
            "name: AP_South",
            "regions[2].name",
        ),
        (
            "weight and rate",
            "rate: 500",
            "rate: 500\n    weight: 1",
            "regions[2].rate",
        ),
        ("wrong type", "rate: 3000", "rate: lots", "load.rate"),
        (
            "bad arrival",
            "model: open",
            "model: open\n  arrival: bursty",
            "load.arrival",
        ),
        (
            "seed without poisson",
            "model: open",
            "model: open\n  seed: 4",
            "load.seed",
        ),
    ];
    for (label, from, to, expect) in cases {
        assert!(GOOD.contains(from), "{label}: fixture lacks {from:?}");
        let text = GOOD.replacen(from, to, 1);
        let f = write(".yaml", &text);
        let e = load_with_env(f.path(), BTreeMap::new()).expect_err(label);
        let shown = e.to_string();
        assert!(
            shown.starts_with(&f.path().display().to_string()),
            "{label}: {shown}"
        );
        assert!(
            shown.contains(expect),
            "{label}: expected {expect:?} in {shown}"
        );
    }
}

#[test]
fn unknown_field_is_located() {
    let e =
        load_text(&GOOD.replacen("load:\n", "load:\n  bogus: 1\n", 1)).expect_err("unknown field");
    assert_eq!(e.field, "load.bogus");
}

#[test]
fn open_rate_must_cover_explicit_region_rates() {
    let e = load_text(&GOOD.replacen("rate: 3000", "rate: 400", 1)).expect_err("too small");
    assert_eq!(e.field, "load.rate");
}

#[test]
fn missing_file_and_format_are_clear() {
    let e = load_with_env(Path::new("/nonexistent/x.yaml"), BTreeMap::new()).expect_err("missing");
    assert!(e.why.contains("cannot read"), "{e}");
    let f = write(".ini", "x");
    let e = load_with_env(f.path(), BTreeMap::new()).expect_err("format");
    assert!(e.why.contains("unknown format"), "{e}");
}

#[test]
fn poisson_arrival_with_a_seed() {
    let s = load_text(&GOOD.replacen(
        "model: open",
        "model: open\n  arrival: poisson\n  seed: 77",
        1,
    ))
    .expect("valid");
    assert_eq!(
        s.load.model,
        Model::Open {
            rate: 3000.0,
            arrival: Arrival::Poisson { seed: 77 }
        }
    );
    // Without a seed, one is chosen (and reported).
    let s = load_text(&GOOD.replacen("model: open", "model: open\n  arrival: poisson", 1))
        .expect("valid");
    assert!(matches!(
        s.load.model,
        Model::Open {
            arrival: Arrival::Poisson { .. },
            ..
        }
    ));
}

#[test]
fn think_time_is_for_the_closed_model() {
    let closed = "[target]\nurl = \"http://127.0.0.1:1/\"\n[load]\nmodel = \"closed\"\nconnections = 4\nduration = \"2s\"\nthink_time = \"uniform(100ms,300ms)\"\n[[regions]]\nname = \"local\"\n";
    let f = write(".toml", closed);
    let s = load_with_env(f.path(), BTreeMap::new()).expect("valid");
    assert_eq!(
        s.load.think_time,
        Some((Duration::from_millis(100), Duration::from_millis(300)))
    );
    let f = write(
        ".toml",
        &closed.replace("uniform(100ms,300ms)", "uniform(300ms,100ms)"),
    );
    let e = load_with_env(f.path(), BTreeMap::new()).expect_err("min > max");
    assert_eq!((e.field.as_str(), e.line), ("load.think_time", Some(7)));
    let e = load_text(&GOOD.replacen("  duration: 15s", "  duration: 15s\n  think_time: 1s", 1))
        .expect_err("open model");
    assert!(e.why.contains("closed model only"), "{e}");
}

const STAGED: &str = r#"
target:
  url: http://127.0.0.1:8080/
load:
  model: open
  connections: 40
  stages:
    - kind: warmup
      duration: 5s
      rate: 100
    - kind: ramp
      duration: 10s
      to: 1000
    - kind: steady
      duration: 20s
      rate: 1000
    - kind: spike
      rate: 3000
      hold: 5s
      recover: 10s
    - kind: step
      levels: [500, 1500]
      hold: 10s
regions:
  - name: eu-west
"#;

#[test]
fn stages_become_phases() {
    let s = load_text(STAGED).expect("valid");
    let phases: Vec<(PhaseKind, u64, f64, f64)> = s
        .load
        .phases
        .iter()
        .map(|p| (p.kind, p.duration.as_secs(), p.from, p.to))
        .collect();
    assert_eq!(
        phases,
        vec![
            (PhaseKind::Warmup, 5, 100.0, 100.0),
            // A ramp starts where the previous stage ended.
            (PhaseKind::Ramp, 10, 100.0, 1000.0),
            (PhaseKind::Steady, 20, 1000.0, 1000.0),
            (PhaseKind::Spike, 5, 3000.0, 3000.0),
            // …and a spike returns to the level before it.
            (PhaseKind::Recover, 10, 1000.0, 1000.0),
            (PhaseKind::Step, 10, 500.0, 500.0),
            (PhaseKind::Step, 10, 1500.0, 1500.0),
        ]
    );
    assert!(s.load.staged);
    assert_eq!(s.load.duration, Duration::from_secs(70));
    assert_eq!(s.load.warmup(), Duration::from_secs(5));
    assert_eq!(s.load.warmup_intervals(), 5);
    assert_eq!(s.load.phases[1].label(), "ramp 100→1000");
    // The open model's rate is the mean over the measured phases.
    let area = 5500.0 + 20_000.0 + 15_000.0 + 10_000.0 + 5000.0 + 15_000.0;
    match s.load.model {
        Model::Open { rate, .. } => assert!((rate - area / 65.0).abs() < 1e-9, "{rate}"),
        Model::Closed => panic!("open model expected"),
    }
}

#[test]
fn closed_model_stages_set_the_peak_concurrency() {
    let text = r#"
target: { url: "http://127.0.0.1:8080/" }
load:
  model: closed
  stages:
    - { kind: ramp, duration: 10s, from: 1, to: 50 }
    - { kind: step, levels: [10, 80, 20], hold: 5s }
regions:
  - name: a
    agents: 2
"#;
    let s = load_text(text).expect("valid");
    assert_eq!(s.load.connections, 80);
    assert_eq!(s.load.model, Model::Closed);
    assert_eq!(s.load.duration, Duration::from_secs(25));
}

#[test]
fn unstaged_scenarios_are_one_steady_phase() {
    let s = load_text(GOOD).expect("valid");
    assert!(!s.load.staged);
    assert_eq!(s.load.phases.len(), 1);
    assert_eq!(s.load.phases[0].to, 3000.0);
    assert_eq!(s.load.warmup(), Duration::ZERO);
}

#[test]
fn bad_stages_name_the_field_and_the_line() {
    let cases: &[(&str, &str, &str)] = &[
        // (replace in STAGED, with, expected "field: why" fragment)
        (
            "      rate: 1000\n",
            "      connections: 1000\n",
            "load.stages[2].connections: this model's stages set `rate`",
        ),
        (
            "      to: 1000\n",
            "",
            "load.stages[1].to: a ramp needs `to`",
        ),
        (
            "kind: steady",
            "kind: plateau",
            "load.stages[2].kind: \"plateau\": expected",
        ),
        (
            "      levels: [500, 1500]\n",
            "      levels: []\n",
            "load.stages[4].levels: a step stage needs `levels`",
        ),
        (
            "      hold: 5s\n",
            "      hold: 0s\n",
            "load.stages[3].hold: must be longer than zero",
        ),
        (
            "      duration: 20s\n",
            "      duration: twenty\n",
            "load.stages[2].duration: \"twenty\" is not a duration",
        ),
        (
            "      duration: 20s\n",
            "      duration: 20.5s\n",
            "load.stages[2]: its steady ends 35s 500ms into the run, not on an interval boundary",
        ),
        (
            "  connections: 40\n",
            "  connections: 40\n  duration: 30s\n",
            "load.duration: the stages set the duration",
        ),
        (
            "  connections: 40\n",
            "  connections: 40\n  rate: 30\n",
            "load.rate: with stages, each stage sets the rate",
        ),
        (
            "      rate: 3000\n",
            "      rate: -3\n",
            "load.stages[3].rate: -3: must be zero or a positive number",
        ),
        (
            "      recover: 10s\n",
            "      recover: 10s\n      levels: [1]\n",
            "load.stages[3].levels: a spike stage has no `levels`",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(STAGED.contains(from), "fixture lacks {from:?}");
        let text = STAGED.replacen(from, to, 1);
        let e = load_text(&text).expect_err(expected);
        let shown = e.to_string();
        assert!(shown.contains(expected), "{shown:?} lacks {expected:?}");
    }
    // Warm-up after a measured stage.
    let text = STAGED.replacen("kind: steady", "kind: warmup", 1);
    let e = load_text(&text).expect_err("warmup after ramp");
    assert_eq!(e.field, "load.stages[2].kind");
    assert!(e.line.is_some(), "{e}");
    // A spike first has no level to return to.
    let text = r#"
target: { url: "http://127.0.0.1:8080/" }
load:
  model: open
  stages:
    - { kind: spike, rate: 100, hold: 1s }
regions: [{ name: a }]
"#;
    let e = load_text(text).expect_err("spike first");
    assert!(e.to_string().contains("put a stage before it"), "{e}");
    // Only warm-up.
    let text = r#"
target: { url: "http://127.0.0.1:8080/" }
load:
  model: closed
  stages:
    - { kind: warmup, connections: 2, duration: 1s }
regions: [{ name: a }]
"#;
    let e = load_text(text).expect_err("only warmup");
    assert!(e.to_string().contains("only warm-up stages"), "{e}");
    // Peak concurrency below the agent count.
    let text = r#"
target: { url: "http://127.0.0.1:8080/" }
load:
  model: closed
  stages:
    - { kind: steady, connections: 2, duration: 1s }
regions: [{ name: a, agents: 3 }]
"#;
    let e = load_text(text).expect_err("too few connections");
    assert!(
        e.to_string()
            .contains("cannot give each of the 3 agents one"),
        "{e}"
    );
}

#[test]
fn thresholds_are_read_and_bad_ones_point_at_their_line() {
    let text = format!("{GOOD}thresholds:\n  - p99 < 250ms\n  - \"eu-west: error_rate < 0.1%\"\n");
    let s = load_text(&text).expect("valid");
    assert_eq!(s.thresholds.len(), 2);
    assert_eq!(s.thresholds[1].text, "eu-west: error_rate < 0.1%");
    let text = format!("{GOOD}thresholds:\n  - p99 < 250ms\n  - p99 < soon\n");
    let e = load_text(&text).expect_err("bad limit");
    assert_eq!(e.field, "thresholds[1]");
    assert_eq!(e.line, Some(text.lines().count()));
    assert!(e.why.contains("is not a duration"), "{e}");
}

fn load_in(dir: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let path = dir.join("s.yaml");
    std::fs::write(&path, text).expect("write");
    load_with_env(&path, BTreeMap::new())
}

const MIX: &str = r#"
target:
  url: http://127.0.0.1:8080/api/
  headers:
    accept: application/json
requests:
  - name: small
    weight: 4
    method: post
    url: "v1/{{model}}:predict"
    body_file: body.json
  - name: health
    url: /health
    headers:
      accept: text/plain
data:
  file: rows.jsonl
load:
  model: open
  rate: 10
  duration: 1s
regions:
  - name: eu-west
"#;

fn mix_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("body.json"), r#"{"prompt": "{{prompt}}"}"#).expect("write");
    std::fs::write(
        dir.path().join("rows.jsonl"),
        "{\"model\": \"m1\", \"prompt\": \"hi\"}\n{\"model\": \"m2\", \"prompt\": \"ho\"}\n",
    )
    .expect("write");
    dir
}

#[test]
fn reads_a_request_mix_with_data() {
    let dir = mix_dir();
    let s = load_in(dir.path(), MIX).expect("valid");
    assert_eq!(s.requests.len(), 2);
    let small = &s.requests[0];
    assert_eq!(small.method, "POST");
    assert_eq!(small.body, br#"{"prompt": "{{prompt}}"}"#);
    assert_eq!(
        small.url.resolve(&s.target.url),
        "http://127.0.0.1:8080/api/v1/{{model}}:predict"
    );
    // Request headers override the target's.
    assert_eq!(
        s.requests[1].headers,
        vec![("accept".to_owned(), "text/plain".to_owned())]
    );
    let data = s.data.as_ref().expect("data");
    assert_eq!(data.columns, ["model", "prompt"]);
    assert_eq!(data.rows.len(), 2);
}

#[test]
fn bad_mixes_name_the_field() {
    let dir = mix_dir();
    let cases: &[(&str, &str, &str)] = &[
        (
            "v1/{{model}}:predict",
            "v1/{{modle}}:predict",
            "requests[0].url: unknown placeholder {{modle}}: the data's columns are model, prompt",
        ),
        (
            "  - name: health",
            "  - name: small",
            "requests[1].name: request \"small\" is listed twice",
        ),
        (
            "    weight: 4",
            "    weight: 0",
            "requests[0].weight: 0: must be a positive number",
        ),
        (
            "    body_file: body.json",
            "    body_file: nope.json",
            "requests[0].body_file: nope.json: cannot read",
        ),
        (
            "    body_file: body.json",
            "    body_file: body.json\n    body: x",
            "requests[0].body_file: give a body or a body_file, not both",
        ),
        (
            "    url: /health",
            "    url: http://127.0.0.2:9/health",
            "requests[1].url: goes to http://127.0.0.2:9",
        ),
        (
            "    url: /health",
            "    url: https://h/health",
            "only http:// URLs",
        ),
        (
            "  file: rows.jsonl",
            "  file: rows.jsonl\n  order: shuffled",
            "data.order: \"shuffled\": expected sequential, random or once",
        ),
        (
            "  file: rows.jsonl",
            "  file: none.csv",
            "data.file: none.csv: cannot read",
        ),
        (
            "  headers:\n    accept: application/json\nrequests",
            "  method: GET\nrequests",
            "target.method: with `requests`, each request has its own method",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(MIX.contains(from), "fixture lacks {from:?}");
        let text = MIX.replacen(from, to, 1);
        let e = load_in(dir.path(), &text).expect_err(expected);
        assert!(e.to_string().contains(expected), "{e} lacks {expected:?}");
        assert!(
            e.line.is_some() || e.field.starts_with("data"),
            "{e} has no line"
        );
    }
    // A placeholder without any data file.
    let text = MIX.replacen("data:\n  file: rows.jsonl\n", "", 1);
    let e = load_in(dir.path(), &text).expect_err("no data");
    assert!(
        e.to_string().contains("the scenario has no data file"),
        "{e}"
    );
}

#[test]
fn cost_is_read_and_checked() {
    let s = load_text(&format!("{GOOD}cost:\n  hourly_usd: 2.5\n  instances: 4\n")).expect("valid");
    assert_eq!(
        s.cost,
        Some(Cost {
            hourly_usd: 2.5,
            instances: 4
        })
    );
    let e = load_text(&format!("{GOOD}cost:\n  hourly_usd: -1\n")).expect_err("negative");
    assert_eq!(e.field, "cost.hourly_usd");
    let e =
        load_text(&format!("{GOOD}cost:\n  hourly_usd: 1\n  instances: 0\n")).expect_err("zero");
    assert_eq!(e.field, "cost.instances");
}

#[test]
fn an_oversized_scenario_is_refused_before_it_is_read() {
    let padding = "#".repeat(MAX_SCENARIO_BYTES as usize);
    let e = load_text(&format!("{GOOD}{padding}\n")).expect_err("too big");
    assert_eq!(e.field, "(file)");
    assert!(e.why.contains("a scenario file is at most 1024 KiB"), "{e}");
}

#[test]
fn the_fault_policy_is_read_and_checked() {
    let s = load_text(GOOD).expect("valid");
    assert_eq!(s.faults, FaultPolicy::default());
    let s = load_text(&format!(
        "{GOOD}agent_loss_timeout: 5s\non_agent_loss: fail\n"
    ))
    .expect("valid");
    assert_eq!(s.faults.agent_loss_timeout, Duration::from_secs(5));
    assert_eq!(s.faults.on_agent_loss, OnAgentLoss::Fail);

    let e = load_text(&format!("{GOOD}agent_loss_timeout: 1s\n")).expect_err("too short");
    assert_eq!(e.field, "agent_loss_timeout");
    assert!(e.why.contains("heartbeat"), "{}", e.why);
    assert!(e.line.is_some(), "the error points at its line");
    let e = load_text(&format!("{GOOD}on_agent_loss: shrug\n")).expect_err("unknown policy");
    assert_eq!(e.field, "on_agent_loss");
    assert!(e.why.contains("`continue`"), "{}", e.why);
    let s = load_text(&format!(
        "{GOOD}on_agent_loss: redistribute\nlate_joiners: take_over\n"
    ))
    .expect("valid");
    assert_eq!(s.faults.on_agent_loss, OnAgentLoss::Redistribute);
    assert_eq!(s.faults.late_joiners, LateJoiners::TakeOver);
    let e = load_text(&format!("{GOOD}late_joiners: sometimes\n")).expect_err("unknown choice");
    assert_eq!(e.field, "late_joiners");
    assert!(e.line.is_some());
}

#[test]
fn a_submitted_scenario_may_not_refer_to_local_files() {
    let text = "name: x\ntarget:\n  url: http://127.0.0.1:1/\nload:\n  model: open\n  rate: 5\n  duration: 1s\nregions:\n  - name: local\nrequests:\n  - name: a\n    body_file: body.json\n";
    let e = super::load_text("ci/x.yaml", text).expect_err("refused");
    assert_eq!(e.file, "ci/x.yaml");
    assert_eq!(e.field, "requests[0].body_file");
    assert!(e.why.contains("cannot refer to local files"), "{e}");
    assert!(e.line.is_some(), "{e}");
    let plain = text.split("requests:").next().expect("head");
    let scenario = super::load_text("ci/x.yaml", plain).expect("a plain scenario is fine");
    assert_eq!(scenario.name, "x");
    let e = super::load_text("ci/x.json", plain).expect_err("format from the name");
    assert_eq!(e.field, "(file)");
}

#[test]
fn endpoints_routing_and_failovers_are_read_and_checked() {
    const BASE: &str = "name: t\ntarget:\n  url: http://127.0.0.1:1/\nload:\n  model: open\n  rate: 10\n  duration: 10s\nregions:\n  - name: us\n  - name: eu\n";
    let endpoints = "endpoints:\n  - name: us\n    url: http://127.0.0.1:2/\n  - name: eu\n    url: http://127.0.0.1:3/\n    weight: 3\n";
    let s = load_text(&format!(
        "{BASE}{endpoints}routing: matrix\nfailover:\n  - at: 4s\n    endpoint: eu\n    down: true\n"
    ))
    .expect("valid");
    let t = s.topology.expect("a topology");
    assert_eq!(t.routing, topology::Routing::Matrix);
    assert_eq!(t.endpoints[1].weight, 3.0);
    assert_eq!(t.periods("us", s.load.duration).len(), 2);

    let cases: &[(&str, &str, &str)] = &[
        ("routing: matrix\n", "routing", "needs `endpoints`"),
        (
            "endpoints:\n  - name: us\n    url: http://127.0.0.1:2/\n",
            "endpoints",
            "region \"eu\" has none",
        ),
        (
            &format!("{endpoints}failover:\n  - at: 4s\n    region: eu\n    to: ap\n"),
            "failover[0].to",
            "unknown endpoint \"ap\"",
        ),
        (
            &format!("{endpoints}failover:\n  - at: 12s\n    region: eu\n    to: us\n"),
            "failover[0].at",
            "inside the run",
        ),
        (
            &format!("{endpoints}failover:\n  - at: 2s\n    region: eu\n"),
            "failover[0]",
            "either `region` and `to`",
        ),
        (
            &format!("{endpoints}routing: star\n"),
            "routing",
            "`matrix`",
        ),
        (
            "endpoints:\n  - name: US\n    url: http://127.0.0.1:2/\n",
            "endpoints[0].name",
            "lowercase",
        ),
    ];
    for (extra, field, why) in cases {
        let e = load_text(&format!("{BASE}{extra}")).expect_err(extra);
        assert_eq!(e.field, *field, "{extra}: {e}");
        assert!(e.why.contains(why), "{extra}: {e}");
    }
}

#[test]
fn keep_alive_and_dns_refresh() {
    let s = load_text(GOOD).expect("valid");
    let t = &s.target.transport;
    assert!(!t.new_connection_per_request);
    assert_eq!(
        t.dns_refresh,
        Some(Duration::from_secs(300)),
        "k6's default"
    );
    let s = load_text(&GOOD.replacen(
        "  headers:",
        "  keep_alive: false\n  dns_refresh: 30s\n  headers:",
        1,
    ))
    .expect("valid");
    let t = &s.target.transport;
    assert!(t.new_connection_per_request);
    assert_eq!(t.dns_refresh, Some(Duration::from_secs(30)));
    let s = load_text(&GOOD.replacen("  headers:", "  dns_refresh: never\n  headers:", 1))
        .expect("valid");
    assert_eq!(s.target.transport.dns_refresh, None);
    assert_eq!(
        load_text(GOOD).expect("valid").target.transport.dns_policy,
        DnsPolicy::PreferIpv4,
        "k6's default"
    );
    for (name, policy) in DnsPolicy::NAMES {
        let s = load_text(&GOOD.replacen(
            "  headers:",
            &format!("  dns_policy: {name}\n  headers:"),
            1,
        ))
        .expect(name);
        assert_eq!(s.target.transport.dns_policy, policy);
    }
    for (line, why) in [
        ("dns_policy: ipv4", "not one of prefer_ipv4, prefer_ipv6"),
        ("dns_refresh: 100ms", "at least 1s"),
        ("dns_refresh: soon", "not a duration"),
        ("protocol: http2\n  keep_alive: false", "HTTP/1.1"),
    ] {
        let e = load_text(&GOOD.replacen("  headers:", &format!("  {line}\n  headers:"), 1))
            .expect_err(line);
        assert!(e.field.starts_with("target."), "{line}: {e}");
        assert!(e.why.contains(why), "{line}: {e}");
    }
}

#[test]
fn grpc_scenarios_take_endpoints_whose_urls_are_origins() {
    const BASE: &str = "name: t\ntarget:\n  url: http://127.0.0.1:1/\ngrpc:\n  kserve:\n    model: echo\n    inputs:\n      - name: x\n        datatype: INT64\n        shape: [1]\n        data: [1]\nload:\n  model: open\n  rate: 10\n  duration: 10s\nregions:\n  - name: us\n  - name: eu\nrouting: matrix\n";
    let s = load_text(&format!(
        "{BASE}endpoints:\n  - name: us\n    url: http://127.0.0.1:2/\n  - name: eu\n    url: http://127.0.0.1:3\n"
    ))
    .expect("gRPC with endpoints is valid");
    assert!(s.grpc.is_some());
    // `stampede validate` says what is sent, and where.
    let said = s.describe();
    assert!(
        said.contains(
            "gRPC /inference.GRPCInferenceService/ModelInfer to endpoints us, eu (matrix routing)"
        ),
        "{said}"
    );
    assert_eq!(s.topology.expect("a topology").endpoints.len(), 2);
    let plain = load_text(BASE.replace("routing: matrix\n", "").as_str()).expect("gRPC");
    assert!(
        plain
            .describe()
            .contains("gRPC /inference.GRPCInferenceService/ModelInfer at http://127.0.0.1:1/"),
        "{}",
        plain.describe()
    );

    // A path would be dropped (the method is grpc.method): refused by name.
    let e = load_text(&format!(
        "{BASE}endpoints:\n  - name: us\n    url: http://127.0.0.1:2/\n  - name: eu\n    url: http://127.0.0.1:3/v2/infer\n"
    ))
    .expect_err("a path");
    assert_eq!(e.field, "endpoints[1].url", "{e}");
    assert!(e.why.contains("scheme, host and port only"), "{e}");

    // `target.tls` serves the https endpoints, even when target.url is http.
    let s = load_text(&format!(
        "{BASE}endpoints:\n  - name: us\n    url: https://127.0.0.1:2/\n  - name: eu\n    url: http://127.0.0.1:3/\n"
    ).replace("  url: http://127.0.0.1:1/\n", "  url: http://127.0.0.1:1/\n  tls:\n    server_name: us.example\n"))
    .expect("tls for an https endpoint");
    assert_eq!(
        s.target
            .transport
            .tls
            .and_then(|t| t.server_name)
            .as_deref(),
        Some("us.example")
    );
}
