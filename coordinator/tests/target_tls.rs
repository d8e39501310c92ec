//! TLS to targets end to end, with a CA generated in the test: the built-in
//! target serves TLS (ALPN h2 and http/1.1); coordinator and agents (in
//! process) run HTTP/1.1 and HTTP/2 over it. Trusted through `tls.ca` it
//! works; untrusted, every request fails as a `tls` error (and the run still
//! reports); `insecure: true` works and is echoed; a target requiring
//! client certificates accepts `cert`/`key`. Bad `tls:` input is refused at
//! validation, naming the file and the field.

mod support;

use stampede_coordinator::report::model::RunReport;
use stampede_coordinator::scenario::{ScenarioError, load_with_env};
use std::collections::BTreeMap;
use std::path::Path;
use support::InProcessTarget;
use support::certs::TestCa;

/// The built-in target serving TLS, answering at once.
async fn tls_target(ca: &TestCa, client_auth: bool) -> InProcessTarget {
    support::certs::tls_target(ca, client_auth, std::time::Duration::ZERO).await
}

/// A one-second closed-model scenario against `url`; `extra_target` lines
/// go under `target:` (protocol, tls), indented by the caller.
fn scenario(url: &url::Url, extra_target: &str) -> String {
    format!(
        r#"
target:
  url: {url}
{extra_target}
load:
  model: closed
  connections: 2
  duration: 1s
regions:
  - name: local
start_delay: 300ms
"#
    )
}

fn load(dir: &Path, yaml: &str) -> Result<stampede_coordinator::scenario::Scenario, ScenarioError> {
    let path = dir.join("tls.yaml");
    std::fs::write(&path, yaml).expect("write scenario");
    load_with_env(&path, BTreeMap::new())
}

async fn run(dir: &Path, yaml: &str) -> RunReport {
    let scenario = load(dir, yaml).expect("valid scenario");
    support::run_with_agents(scenario, &["local"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_scenario_ca_works_over_http1_and_http2() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path(), "target");
    let target = tls_target(&ca, false).await;
    assert_eq!(target.url.scheme(), "https");
    let mut before = 0;
    for protocol in ["http1", "http2"] {
        let extra = format!("  protocol: {protocol}\n  tls:\n    ca: {}", ca.ca());
        let report = run(dir.path(), &scenario(&target.url, &extra)).await;
        let served = target.stats.served();
        let g = &report.global;
        assert_eq!(g.errors.total, 0, "{protocol}: {:?}", g.errors);
        assert!(g.requests > 0, "{protocol}");
        assert_eq!(
            g.requests,
            served - before,
            "{protocol}: report and target disagree"
        );
        before = served;
        let tls = report.scenario.tls.as_ref().expect("tls echoed");
        assert!(tls.custom_ca && !tls.insecure && !tls.client_certificate);
        assert_eq!(report.scenario.protocol, protocol);
    }
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_target_fails_as_tls_errors_not_a_crash() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path(), "target");
    let target = tls_target(&ca, false).await;
    for protocol in ["http1", "http2"] {
        // No `tls:` section: the public roots, which do not know the test CA.
        let extra = format!("  protocol: {protocol}");
        let report = run(dir.path(), &scenario(&target.url, &extra)).await;
        let e = &report.global.errors;
        assert_eq!(report.global.successes, 0, "{protocol}");
        assert!(e.tls > 0, "{protocol}: {e:?}");
        assert_eq!(e.total, e.tls, "{protocol}: only TLS errors: {e:?}");
        assert!(report.scenario.tls.is_none());
    }
    assert_eq!(target.stats.served(), 0);
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skips_verification_and_says_so() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path(), "target");
    let target = tls_target(&ca, false).await;
    let yaml = scenario(&target.url, "  protocol: http2\n  tls:\n    insecure: true");
    let checked = load(dir.path(), &yaml).expect("valid");
    assert!(
        checked.describe().contains("TLS INSECURE"),
        "{}",
        checked.describe()
    );
    let report = run(dir.path(), &yaml).await;
    let served = target.stats.served();
    target.stop().await;
    assert_eq!(report.global.errors.total, 0, "{:?}", report.global.errors);
    assert_eq!(report.global.requests, served);
    let tls = report.scenario.tls.as_ref().expect("tls echoed");
    assert!(tls.insecure && !tls.custom_ca);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_requiring_client_certificates_accepts_cert_and_key() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path(), "target");
    let client = ca.client("client");
    let target = tls_target(&ca, true).await;
    for protocol in ["http1", "http2"] {
        let extra = format!(
            "  protocol: {protocol}\n  tls:\n    ca: {}\n    cert: {}\n    key: {}",
            ca.ca(),
            client.cert(),
            client.key()
        );
        let report = run(dir.path(), &scenario(&target.url, &extra)).await;
        assert_eq!(
            report.global.errors.total, 0,
            "{protocol}: {:?}",
            report.global.errors
        );
        assert!(report.global.requests > 0);
        let tls = report.scenario.tls.as_ref().expect("tls echoed");
        assert!(tls.client_certificate);
    }
    // Without one the target refuses every request (with TLS 1.3 the client
    // learns it after its side of the handshake, so the class may be `tls`
    // or `other`), and serves nothing.
    let served = target.stats.served();
    let extra = format!("  tls:\n    ca: {}", ca.ca());
    let report = run(dir.path(), &scenario(&target.url, &extra)).await;
    assert_eq!(report.global.successes, 0);
    assert!(report.global.errors.total > 0);
    assert_eq!(target.stats.served(), served);
    target.stop().await;
}

/// The error for `yaml` names the scenario file and `field`, and says `why`.
fn refused(dir: &Path, yaml: &str, field: &str, why: &str) {
    let e = load(dir, yaml).expect_err("refused");
    assert_eq!(e.field, field, "{e}");
    assert!(e.file.ends_with("tls.yaml"), "{e}");
    assert!(e.to_string().contains(why), "{e}");
}

#[test]
fn bad_tls_and_protocol_input_names_file_and_field() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path(), "target");
    let client = ca.client("client");
    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let https = url::Url::parse("https://127.0.0.1:1/").expect("url");
    let http = url::Url::parse("http://127.0.0.1:1/").expect("url");
    let d = dir.path();
    refused(
        d,
        &scenario(&https, "  tls:\n    ca: missing-ca.pem"),
        "target.tls.ca",
        "missing-ca.pem: cannot read",
    );
    refused(
        d,
        &scenario(&https, &format!("  tls:\n    ca: {}", bad.display())),
        "target.tls.ca",
        "not a valid PEM certificate file",
    );
    refused(
        d,
        &scenario(&https, &format!("  tls:\n    cert: {}", client.cert())),
        "target.tls.key",
        "needs its `key`",
    );
    refused(
        d,
        &scenario(&https, &format!("  tls:\n    key: {}", client.key())),
        "target.tls.cert",
        "needs its client certificate",
    );
    refused(
        d,
        &scenario(
            &https,
            &format!("  tls:\n    insecure: true\n    ca: {}", ca.ca()),
        ),
        "target.tls.insecure",
        "`ca` would be ignored",
    );
    refused(
        d,
        &scenario(&http, &format!("  tls:\n    ca: {}", ca.ca())),
        "target.tls",
        "applies to https:// URLs",
    );
    refused(
        d,
        &scenario(&https, "  protocol: http3"),
        "target.protocol",
        "write http1 or http2",
    );
    let streams = |protocol: &str, n: i64| {
        scenario(&http, &format!("  protocol: {protocol}")).replace(
            "  connections: 2\n",
            &format!("  connections: 2\n  streams_per_connection: {n}\n"),
        )
    };
    refused(
        d,
        &streams("http1", 4),
        "load.streams_per_connection",
        "HTTP/1.1 sends one request at a time",
    );
    refused(
        d,
        &streams("http2", 0),
        "load.streams_per_connection",
        "between 1 and 1000",
    );
    // The line is found too.
    let e = load(d, &streams("http1", 4)).expect_err("refused");
    assert!(e.line.is_some(), "{e}");
    // And the good ones pass.
    load(d, &streams("http2", 100)).expect("http2 with streams");
    load(d, &streams("http1", 1)).expect("http1 with one stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_cli_serves_tls_from_its_files() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path(), "target");
    let server = ca.server("target");
    let mut target = support::spawn(
        "target",
        &[
            "target",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            server.cert(),
            "--tls-key",
            server.key(),
        ],
    );
    let addr = target.line_after(
        "target listening on https://",
        std::time::Duration::from_secs(30),
    );
    let url = url::Url::parse(&format!("https://{addr}/")).expect("url");
    for protocol in ["http1", "http2"] {
        let extra = format!("  protocol: {protocol}\n  tls:\n    ca: {}", ca.ca());
        let report = run(dir.path(), &scenario(&url, &extra)).await;
        assert_eq!(
            report.global.errors.total, 0,
            "{protocol}: {:?}",
            report.global.errors
        );
        assert!(report.global.requests > 0, "{protocol}");
    }
    target.stop();
}
