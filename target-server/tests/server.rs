//! End-to-end tests of the target over real loopback TCP.
//!
//! Timing assertions are lower bounds only (a delay must have been waited out), except that requests the
//! stall must *not* hold are checked to be shorter than the stall: that contrast is what is under test.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use stampede_target::{
    DelaySpec, REGION_HEADER, StallSpec, StatsSnapshot, TargetConfig, TargetError, TargetServer,
};
use support::{Client, Running};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config_with_regions(regions: &[(&str, &str)]) -> TargetConfig {
    TargetConfig {
        region_delays: regions
            .iter()
            .map(|(name, delay)| {
                (
                    name.to_string(),
                    delay.parse::<DelaySpec>().expect("valid delay"),
                )
            })
            .collect(),
        ..TargetConfig::default()
    }
}

async fn fetch_stats(client: &mut Client) -> StatsSnapshot {
    let resp = client.get("/__stampede/stats").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    serde_json::from_slice(&resp.body).expect("stats are a JSON StatsSnapshot")
}

#[tokio::test]
async fn answers_ok_with_a_plain_text_body() {
    let target = Running::start(TargetConfig::default()).await;
    let mut client = target.client().await;
    let resp = client.get("/anything?x=1").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert_eq!(resp.body, b"ok");
    target.stop().await;
}

#[tokio::test]
async fn body_has_the_configured_size() {
    let target = Running::start(TargetConfig {
        body_bytes: 1000,
        ..TargetConfig::default()
    })
    .await;
    let mut client = target.client().await;
    let resp = client.get("/").await;
    assert_eq!(resp.body.len(), 1000);
    assert!(resp.body.starts_with(b"ok"));
    target.stop().await;
}

#[tokio::test]
async fn region_delays_are_applied() {
    let target = Running::start(config_with_regions(&[
        ("far", "50ms"),
        ("near", "0"),
        ("spread", "uniform(30ms,40ms)"),
    ]))
    .await;
    let mut client = target.client().await;

    let start = Instant::now();
    assert_eq!(client.get("/region/far").await.status, 200);
    assert!(
        start.elapsed() >= ms(50),
        "path-selected region waited {:?}",
        start.elapsed()
    );

    let start = Instant::now();
    assert_eq!(client.get("/region/far/deeper/path?q=1").await.status, 200);
    assert!(
        start.elapsed() >= ms(50),
        "region prefix with a longer path waited {:?}",
        start.elapsed()
    );

    let start = Instant::now();
    assert_eq!(
        client
            .request("GET", "/", &[(REGION_HEADER, "far")])
            .await
            .status,
        200
    );
    assert!(
        start.elapsed() >= ms(50),
        "header-selected region waited {:?}",
        start.elapsed()
    );

    let start = Instant::now();
    assert_eq!(client.get("/region/spread").await.status, 200);
    assert!(
        start.elapsed() >= ms(30),
        "uniform region waited {:?}",
        start.elapsed()
    );

    // The zero-delay default and a zero-delay region answer too (no upper bound asserted).
    assert_eq!(client.get("/region/near").await.status, 200);
    assert_eq!(client.get("/region/unconfigured").await.status, 200);
    assert_eq!(client.get("/").await.status, 200);
    target.stop().await;
}

#[tokio::test]
async fn stats_count_per_region_and_exclude_admin() {
    let target = Running::start(config_with_regions(&[("us-east", "0"), ("eu-west", "0")])).await;
    let mut client = target.client().await;

    for _ in 0..3 {
        assert_eq!(client.get("/region/us-east/x").await.status, 200);
    }
    assert_eq!(client.get("/region/us-east/status/503").await.status, 503);
    for _ in 0..2 {
        assert_eq!(
            client
                .request("GET", "/", &[(REGION_HEADER, "eu-west")])
                .await
                .status,
            200
        );
    }
    assert_eq!(client.get("/region/mars").await.status, 200);
    assert_eq!(client.get("/").await.status, 200);
    assert_eq!(client.get("/status/204").await.status, 204);

    // Admin endpoints, including failing ones, are not counted.
    let first = fetch_stats(&mut client).await;
    assert_eq!(client.get("/__stampede/nope").await.status, 404);
    assert_eq!(client.get("/__stampede/stall?for=1ms").await.status, 405);
    assert_eq!(
        client
            .request("POST", "/__stampede/stall", &[])
            .await
            .status,
        400
    );
    let second = fetch_stats(&mut client).await;
    assert_eq!(first, second);

    let expected = StatsSnapshot {
        served: 9,
        regions: BTreeMap::from(
            [("", 2), ("eu-west", 2), ("mars", 1), ("us-east", 4)].map(|(k, v)| (k.to_owned(), v)),
        ),
    };
    assert_eq!(second, expected);
    assert_eq!(target.stats.snapshot(), expected);
    assert_eq!(target.stats.served(), 9);
    assert_eq!(target.stats.served_in_region("us-east"), 4);
    assert_eq!(target.stats.served_in_region("eu-west"), 2);
    assert_eq!(target.stats.served_in_region("mars"), 1);
    assert_eq!(target.stats.served_in_region(""), 2);
    assert_eq!(target.stats.served_in_region("nowhere"), 0);
    target.stop().await;
}

#[tokio::test]
async fn status_paths_answer_with_that_status() {
    let target = Running::start(config_with_regions(&[("us-east", "0")])).await;
    let mut client = target.client().await;

    let resp = client.get("/status/503").await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.body, b"ok");
    assert_eq!(client.get("/region/us-east/status/404").await.status, 404);
    assert_eq!(client.get("/status/599").await.status, 599);
    let no_content = client.get("/status/204").await;
    assert_eq!((no_content.status, no_content.body.len()), (204, 0));
    for bad in [
        "/status/42",
        "/status/100",
        "/status/600",
        "/status/abc",
        "/status/99999999",
    ] {
        let resp = client.get(bad).await;
        assert_eq!(resp.status, 400, "{bad}");
        assert!(
            resp.text().contains("bad status code"),
            "{bad}: {}",
            resp.text()
        );
    }
    // The connection survived all of that.
    assert_eq!(client.get("/").await.status, 200);
    assert_eq!(target.stats.served(), 10);
    target.stop().await;
}

#[tokio::test]
async fn automatic_stall_holds_requests_arriving_in_the_window() {
    let stall = StallSpec {
        after_requests: 3,
        duration: ms(300),
    };
    let target = Running::start(TargetConfig {
        stall: Some(stall),
        ..TargetConfig::default()
    })
    .await;
    let mut first = target.client().await;
    let mut second = target.client().await;

    for n in 1..=2 {
        let start = Instant::now();
        assert_eq!(first.get("/").await.status, 200);
        assert!(
            start.elapsed() < stall.duration,
            "request {n} was stalled: {:?}",
            start.elapsed()
        );
    }

    // Request 3 opens the window; request 4 is sent while it is open, on another connection.
    let sent3 = Instant::now();
    first.send("GET", "/", &[], b"").await;
    second.send("GET", "/region/anywhere", &[], b"").await;
    let ((resp3, done3), (resp4, done4)) = tokio::join!(
        async {
            let r = first.read_response().await;
            (r, Instant::now())
        },
        async {
            let r = second.read_response().await;
            (r, Instant::now())
        },
    );
    assert_eq!((resp3.status, resp4.status), (200, 200));
    assert!(
        done3 - sent3 >= stall.duration,
        "request 3 took {:?}",
        done3 - sent3
    );
    assert!(
        done4 - sent3 >= stall.duration,
        "request 4 ended {:?} after the window opened",
        done4 - sent3
    );

    // Only one automatic stall per server life.
    let start = Instant::now();
    assert_eq!(first.get("/").await.status, 200);
    assert!(
        start.elapsed() < stall.duration,
        "a second stall happened: {:?}",
        start.elapsed()
    );
    assert_eq!(target.stats.served(), 5);
    target.stop().await;
}

#[tokio::test]
async fn admin_stall_holds_later_requests() {
    let target = Running::start(TargetConfig::default()).await;
    let mut client = target.client().await;

    let bad = client
        .request("POST", "/__stampede/stall?for=soon", &[])
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("invalid duration \"soon\""),
        "{}",
        bad.text()
    );

    let opened = Instant::now();
    let resp = client
        .request("POST", "/__stampede/stall?for=200ms", &[])
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(client.get("/").await.status, 200);
    assert!(
        opened.elapsed() >= ms(200),
        "answered {:?} after the stall opened",
        opened.elapsed()
    );
    assert_eq!(target.stats.served(), 1);
    target.stop().await;
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let target = Running::start(config_with_regions(&[("r", "1ms")])).await;
    let mut client = target.client().await;

    for i in 0..20 {
        let resp = client.get(&format!("/region/r/{i}")).await;
        assert_eq!(
            (resp.status, resp.body.as_slice()),
            (200, &b"ok"[..]),
            "request {i}"
        );
    }
    // A POST with a body does not break the connection: the body is read and discarded.
    client.send("POST", "/upload", &[], &[b'x'; 10_000]).await;
    assert_eq!(client.read_response().await.status, 200);

    // Pipelined: five requests written back to back, five answers in order.
    for i in 0..5 {
        client
            .send("GET", &format!("/status/{}", 500 + i), &[], b"")
            .await;
    }
    for i in 0..5 {
        assert_eq!(client.read_response().await.status, 500 + i);
    }
    assert_eq!(target.stats.served(), 26);
    assert_eq!(target.stats.served_in_region("r"), 20);
    target.stop().await;
}

#[tokio::test]
async fn run_returns_promptly_with_idle_keep_alive_connections() {
    let target = Running::start(TargetConfig::default()).await;
    let mut idle = target.client().await;
    assert_eq!(idle.get("/").await.status, 200);

    target.stop().await;
    assert!(
        idle.is_closed_by_server().await,
        "idle connection closed on shutdown"
    );
}

#[tokio::test]
async fn bind_rejects_bad_configs() {
    let err = TargetServer::bind(config_with_regions(&[("us east", "1ms")]))
        .await
        .expect_err("a region name with a space can never be selected");
    assert!(matches!(err, TargetError::InvalidRegion { .. }), "{err}");
    assert!(err.to_string().contains("\"us east\""), "{err}");

    let taken = TargetServer::bind(TargetConfig::default())
        .await
        .expect("bind");
    let err = TargetServer::bind(TargetConfig {
        listen: taken.local_addr(),
        ..TargetConfig::default()
    })
    .await
    .expect_err("address in use");
    assert!(matches!(err, TargetError::Bind { .. }), "{err}");
    assert!(
        err.to_string().contains(&taken.local_addr().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn capacity_queues_requests_past_the_limit() {
    // 100 req/s: 10 ms slots. 30 requests back to back on one connection arrive far faster, so after the
    // burst allowance (50 ms) each waits for its slot: the 30th is served 29 × 10 − 50 ms after the first.
    let target = Running::start(TargetConfig {
        capacity: Some(100.0),
        ..TargetConfig::default()
    })
    .await;
    let mut client = target.client().await;
    let start = Instant::now();
    for _ in 0..30 {
        assert_eq!(client.get("/").await.status, 200);
    }
    let took = start.elapsed();
    assert!(took >= ms(235), "30 requests at 100 req/s took {took:?}");
    // Admin requests are never queued.
    let start = Instant::now();
    let stats = fetch_stats(&mut client).await;
    assert!(start.elapsed() < ms(200));
    assert_eq!(stats.served, 30);
    target.stop().await;
}

#[tokio::test]
async fn a_region_capacity_limits_that_region_only() {
    let target = Running::start(TargetConfig {
        region_capacities: [("slow".to_owned(), 50.0)].into_iter().collect(),
        ..TargetConfig::default()
    })
    .await;
    let mut client = target.client().await;
    // 20 requests in the limited region: 20 ms slots, so the 20th is served 19 × 20 − 50 ms after the first.
    let start = Instant::now();
    for _ in 0..20 {
        assert_eq!(client.get("/region/slow/x").await.status, 200);
    }
    let limited = start.elapsed();
    assert!(limited >= ms(325), "limited region took {limited:?}");
    // The same in another region is not held back by that limit.
    let start = Instant::now();
    for _ in 0..20 {
        assert_eq!(client.get("/region/fast/x").await.status, 200);
    }
    let free = start.elapsed();
    assert!(free < limited, "unlimited {free:?} vs limited {limited:?}");
    let stats = fetch_stats(&mut client).await;
    assert_eq!(stats.regions.get("slow"), Some(&20));
    target.stop().await;
}

#[tokio::test]
async fn refuses_a_capacity_that_is_not_a_rate() {
    let err = TargetServer::bind(TargetConfig {
        capacity: Some(0.0),
        ..TargetConfig::default()
    })
    .await
    .expect_err("zero capacity");
    assert!(matches!(err, TargetError::InvalidCapacity { .. }), "{err}");
    let err = TargetServer::bind(TargetConfig {
        region_capacities: [("eu-west".to_owned(), f64::NAN)].into_iter().collect(),
        ..TargetConfig::default()
    })
    .await
    .expect_err("NaN capacity");
    assert!(err.to_string().contains("region eu-west"), "{err}");
}
