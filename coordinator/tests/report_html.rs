//! The HTML report of a real (short) demo run, opened in headless Chromium:
//! it loads with no console error (the page's Content-Security-Policy turns
//! any script or fetch into one), its charts are in the rendered DOM with
//! plotted lines, hostile strings in a report stay text, and a screenshot
//! is left in the test's target directory for a person to look at. A second
//! run, with a warm-up, step stages, a request mix and thresholds (one of
//! them failing), shows those sections too.
//!
//! Skips (with a message) when Chromium is not installed, unless
//! `STAMPEDE_REQUIRE_CHROMIUM=1` (CI sets it).

mod support;

use stampede_coordinator::demo::{DemoOptions, run_demo};
use stampede_coordinator::report::{html, model::RunReport};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{InProcessTarget, run_with_agents, spawn_command};
use tokio_util::sync::CancellationToken;

const CHROMIUM_NAMES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// The browser to use: `STAMPEDE_CHROMIUM`, or the first known name on PATH.
fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STAMPEDE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| CHROMIUM_NAMES.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

struct Browser {
    program: PathBuf,
    profile: tempfile::TempDir,
}

struct Load {
    dom: String,
    /// The browser's console messages (errors, CSP violations, uncaught
    /// exceptions), as it logged them.
    console: Vec<String>,
}

impl Browser {
    fn run(&self, name: &str, args: &[&str], page: &Path) -> (Vec<String>, String) {
        let mut command = Command::new(&self.program);
        command
            .args([
                "--headless",
                // Tests run as root in CI, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--hide-scrollbars",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .args(args)
            .arg(format!("file://{}", page.display()));
        let mut browser = spawn_command(name, command);
        let (status, stderr) = browser.wait(Duration::from_secs(120));
        assert!(
            status.success(),
            "{name}: chromium failed ({status}):\n{stderr}"
        );
        (browser.remaining_stdout(), stderr)
    }

    /// Loads `page` and returns the DOM after load, with console messages.
    fn load(&self, page: &Path) -> Load {
        let (stdout, stderr) = self.run("chromium --dump-dom", &["--dump-dom"], page);
        let console = stderr
            .lines()
            .filter(|l| {
                l.contains(":CONSOLE")
                    || l.contains("Uncaught")
                    || l.contains("Content Security Policy")
            })
            .map(str::to_owned)
            .collect();
        Load {
            dom: stdout.join("\n"),
            console,
        }
    }

    fn screenshot(&self, page: &Path, png: &Path) {
        let shot = format!("--screenshot={}", png.display());
        self.run(
            "chromium --screenshot",
            &[&shot, "--window-size=1400,2400"],
            page,
        );
    }
}

/// Each `<svg class="chart">` in the DOM, with the number of plotted lines
/// in it that have at least two points.
fn plotted_lines_per_chart(dom: &str) -> Vec<usize> {
    dom.split("<svg class=\"chart\"")
        .skip(1)
        .map(|rest| {
            let svg = &rest[..rest.find("</svg>").expect("a closed svg")];
            svg.split("<path class=\"line")
                .skip(1)
                .filter(|path| {
                    let d = path
                        .split_once(" d=\"")
                        .map(|(_, d)| &d[..d.find('"').unwrap_or(0)])
                        .unwrap_or("");
                    d.starts_with('M') && d.contains('L')
                })
                .count()
        })
        .collect()
}

/// The demo's report with markup in every string a report carries.
fn hostile(report: &RunReport) -> RunReport {
    let mut r = report.clone();
    let evil = "<img src=x onerror=alert(1)>";
    let old = r.regions[0].name.clone();
    r.regions[0].name = evil.into();
    for interval in &mut r.intervals {
        if let Some(figures) = interval.regions.remove(&old) {
            interval.regions.insert(evil.into(), figures);
        }
    }
    for agent in r.agents.iter_mut().filter(|a| a.region == old) {
        agent.region = evil.into();
        agent.hostname = "<script>alert('host')</script>".into();
    }
    r.scenario.name = "</title><script>alert('name')</script>".into();
    r.scenario.url = "http://x/\"><img src=x>".into();
    r.notes = vec!["<iframe src=\"https://example.invalid/\"></iframe>".into()];
    r
}

/// Chromium, or `None` (the test then skips) unless CI requires it.
fn browser_or_skip() -> Option<Browser> {
    let Some(program) = find_chromium() else {
        if std::env::var("STAMPEDE_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!(
                "STAMPEDE_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install chromium)"
            );
        }
        println!(
            "SKIPPED: chromium not found (apt-get install chromium); the HTML report was not checked in a browser"
        );
        return None;
    };
    Some(Browser {
        program,
        profile: tempfile::tempdir().expect("profile dir"),
    })
}

/// Where screenshots are kept after the test: artifacts for a person.
fn artifact_dir() -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report_html");
    std::fs::create_dir_all(&out).expect("artifact dir");
    out
}

/// Takes a screenshot of `page` into `png` and checks it is a real picture.
fn screenshot(browser: &Browser, page: &Path, png: &Path) {
    let _ = std::fs::remove_file(png);
    browser.screenshot(page, png);
    let bytes = std::fs::read(png).expect("a screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    assert!(
        bytes.len() > 20_000,
        "the screenshot is nearly empty ({} bytes)",
        bytes.len()
    );
    println!("screenshot: {}", png.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_report_opens_in_chromium_without_errors_and_with_its_charts() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let out = artifact_dir();

    // The check can fail: a console error on a page is seen.
    let canary = out.join("canary.html");
    std::fs::write(
        &canary,
        "<!DOCTYPE html><title>c</title><script>console.error('canary-error')</script>",
    )
    .expect("write canary");
    let load = browser.load(&canary);
    assert!(
        load.console.iter().any(|l| l.contains("canary-error")),
        "a console error went unnoticed: {:?}",
        load.console
    );

    let (report, _) = run_demo(
        DemoOptions {
            duration: Duration::from_secs(2),
            rate: 300.0,
        },
        CancellationToken::new(),
    )
    .await
    .expect("the demo runs");
    let page = out.join("report.html");
    html::write(&report, &page).expect("the page writes");

    let load = browser.load(&page);
    assert!(
        load.console.is_empty(),
        "console messages:\n{}",
        load.console.join("\n")
    );
    assert!(
        load.dom.contains("<h1>demo "),
        "the page rendered its title"
    );
    let charts = plotted_lines_per_chart(&load.dom);
    let regions = report.regions.len();
    // throughput, latency per region, distribution, errors
    assert_eq!(charts.len(), 1 + regions + 1 + 1, "charts: {charts:?}");
    assert!(
        charts.iter().all(|lines| *lines >= 2),
        "a chart has fewer than two plotted lines: {charts:?}"
    );
    assert_eq!(
        charts[0],
        1 + regions,
        "throughput: all regions and each region"
    );
    for region in &report.regions {
        assert!(
            load.dom.contains(&region.name),
            "{} is in the page",
            region.name
        );
    }

    screenshot(&browser, &page, &out.join("report.png"));

    // Markup in a report stays text: nothing runs, nothing loads, and the
    // strings are shown as they are.
    let hostile_page = out.join("hostile.html");
    html::write(&hostile(&report), &hostile_page).expect("the page writes");
    let load = browser.load(&hostile_page);
    assert!(
        load.console.is_empty(),
        "console messages on the hostile page:\n{}",
        load.console.join("\n")
    );
    for element in ["<img", "<iframe", "<script"] {
        assert!(!load.dom.contains(element), "{element} became an element");
    }
    assert!(load.dom.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert_eq!(
        plotted_lines_per_chart(&load.dom).len(),
        1 + regions + 1 + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_mix_with_thresholds_shows_its_sections_in_chromium() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let out = artifact_dir();
    let target = InProcessTarget::start(stampede_target::TargetConfig {
        region_delays: [
            ("us-east", Duration::from_millis(2)),
            ("eu-west", Duration::from_millis(20)),
        ]
        .into_iter()
        .map(|(r, d)| (r.to_owned(), stampede_target::DelaySpec::Fixed(d)))
        .collect(),
        ..stampede_target::TargetConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("staged-mix.yaml");
    let base = target.url.as_str().trim_end_matches('/');
    std::fs::write(
        &path,
        format!(
            r#"name: staged-mix
target:
  url: {base}/
  region_urls:
    us-east: {base}/region/us-east/
    eu-west: {base}/region/eu-west/
requests:
  - name: predict-small
    weight: 80
    url: small
  - name: predict-large
    weight: 20
    method: POST
    url: large
    body: '{{"size": "large"}}'
load:
  model: open
  connections: 16
  stages:
    - kind: warmup
      duration: 1s
      rate: 60
    - kind: step
      levels: [100, 200]
      hold: 1s
    - kind: steady
      duration: 1s
      rate: 150
regions:
  - name: us-east
  - name: eu-west
start_delay: 300ms
thresholds:
  - p99 < 5s
  - error_rate < 1%
  - "eu-west: p50 < 1ms"
"#
        ),
    )
    .expect("write scenario");
    let scenario = stampede_coordinator::scenario::load(&path).expect("valid scenario");
    let report = run_with_agents(scenario, &["us-east", "eu-west"]).await;
    target.stop().await;
    assert_eq!(report.stages.len(), 4, "warm-up, two steps, steady");
    assert_eq!(report.requests.len(), 2);
    assert!(
        report.thresholds.iter().any(|t| !t.passed),
        "eu-west cannot answer in 1 ms"
    );

    let page = out.join("staged-mix.html");
    html::write(&report, &page).expect("the page writes");
    let load = browser.load(&page);
    assert!(
        load.console.is_empty(),
        "console messages:\n{}",
        load.console.join("\n")
    );
    let dom = &load.dom;
    for section in ["id=\"thresholds\"", "id=\"stages\"", "id=\"requests\""] {
        assert!(dom.contains(section), "{section} is in the page");
    }
    assert!(dom.contains("class=\"verdict fail\""), "the failure banner");
    assert!(
        dom.contains("eu-west: p50 &lt; 1ms"),
        "names the failed threshold"
    );
    for name in [
        "step 100",
        "step 200",
        "steady 150",
        "predict-small",
        "predict-large",
    ] {
        assert!(dom.contains(&format!(">{name}</td>")), "{name} row");
    }
    // The time charts (throughput, latency per region, errors) shade the
    // warm-up and mark where each later stage starts.
    let time_charts = 1 + report.regions.len() + 1;
    assert_eq!(dom.matches("<rect class=\"span\"").count(), time_charts);
    assert_eq!(
        dom.matches("<line class=\"boundary\"").count(),
        time_charts * 3
    );
    let charts = plotted_lines_per_chart(dom);
    assert_eq!(charts.len(), time_charts + 1, "charts: {charts:?}");
    assert!(charts.iter().all(|lines| *lines >= 2), "charts: {charts:?}");
    screenshot(&browser, &page, &out.join("staged-mix.png"));
}
