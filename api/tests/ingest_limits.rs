//! Uploads against the ingest limits, over HTTP on SQLite (the limits are the data engine's
//! and the upload path's; the database only records what passed): a Parquet dictionary bomb
//! is refused with the gateway's memory measured while it is ingested, a giant CSV field is
//! refused naming its line and column, uploads past `--max-concurrent-ingests` wait then get
//! 503 with `Retry-After`, and a timed-out ingest stops and leaves no temporary file.
//!
//! The gateway runs in this process, so its memory is this process's: the tests of this
//! file run one at a time, and the measured one reads the resident set (VmRSS, sampled, and
//! VmHWM after resetting it) around its upload.

/// Hostile Parquet files (the CLI's tests share `support`, not these).
#[path = "ingest_limits/bombs.rs"]
mod bombs;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::groups::EE_DATA;
use support::{Backend, Gateway, Setup, assert_error, eventually};

/// The tests of this file, one at a time (memory is measured per process).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Most the gateway's resident set may grow while ingesting the bomb.
const MEMORY_BOUND: u64 = 200 << 20;

async fn gateway(extra: &[&str]) -> Gateway {
    let mut setup = Setup::local(support::fresh_database(Backend::Sqlite).await);
    setup.extra = extra.iter().map(|s| (*s).to_owned()).collect();
    Gateway::start(setup).await
}

/// POST `body` to `path` (no client timeout: the bomb took minutes before the fix).
async fn post(
    gw: &Gateway,
    token: &str,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}{path}", gw.url))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

const PARQUET: &str = "application/vnd.apache.parquet";

/// A field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// The peak resident set of this process while `work` runs, above the resident set before:
/// VmRSS sampled every 2 ms, and VmHWM once reset (`/proc/self/clear_refs`) where allowed.
async fn peak_growth<T>(work: impl std::future::Future<Output = T>) -> (T, u64) {
    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_bytes("VmRSS");
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(status_bytes("VmRSS"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let out = work.await;
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let mut top = peak.load(Ordering::Relaxed);
    if hwm_reset {
        top = top.max(status_bytes("VmHWM"));
    }
    eprintln!(
        "resident set: {} MiB before, peak {} MiB (VmHWM reset: {hwm_reset})",
        before >> 20,
        top >> 20
    );
    (out, top.saturating_sub(before))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dictionary_bomb_is_refused_and_the_gateway_s_memory_stays_bounded() {
    let _one = ONE_AT_A_TIME.lock().await;
    let gw = gateway(&[]).await;
    let bob = gw.token("bob", EE_DATA);
    let (status, _, created) = post(
        &gw,
        &bob,
        "/v1/datasets?tenant=est-ensemble&name=residents&classification=open&format=csv",
        b"id,town\n1,Bobigny\n2,Pantin\n".to_vec(),
        "text/csv",
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();

    // One 16 KiB value repeated a million times: about 1 KB on disk, 16 GiB decoded.
    let bomb = bombs::dictionary_bomb(16 * 1024, 1_000_000);
    assert!(bomb.len() < 4096, "the bomb is {} bytes", bomb.len());
    let ((status, _, refused), growth) = peak_growth(post(
        &gw,
        &bob,
        &format!("/v1/datasets/{id}/versions?format=parquet"),
        bomb.clone(),
        PARQUET,
    ))
    .await;
    eprintln!(
        "bomb of {} bytes as a new version: {status}, resident set grew by {} MiB",
        bomb.len(),
        growth >> 20
    );
    assert_error(&(status, refused.clone()), 422, "too_large");
    let message = refused["error"]["message"].as_str().expect("message");
    eprintln!("refusal: {message}");
    for part in [
        "row group 0, rows 1–",
        "column \"payload\"",
        "--max-ingest-memory",
        "128.0 MiB",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert!(
        growth < MEMORY_BOUND,
        "the gateway's resident set grew by {} MiB while ingesting the bomb (bound {} MiB)",
        growth >> 20,
        MEMORY_BOUND >> 20
    );

    // As a new dataset: refused the same way, and nothing is recorded.
    let (status, _, refused) = post(
        &gw,
        &bob,
        "/v1/datasets?tenant=est-ensemble&name=bomb&classification=open&format=parquet",
        bomb,
        PARQUET,
    )
    .await;
    assert_error(&(status, refused), 422, "too_large");

    // What was stored before is intact: one dataset, one version, its rows.
    let (status, listed) = gw.call("GET", "/v1/datasets", Some(&bob), None).await;
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["residents"]);
    let (status, dataset) = gw
        .call("GET", &format!("/v1/datasets/{id}"), Some(&bob), None)
        .await;
    assert_eq!(status, 200, "{dataset}");
    let versions = dataset["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "{dataset}");
    assert_eq!(versions[0]["rows"], 2, "{dataset}");
    assert_eq!(temporary_files(&gw), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_giant_csv_field_is_refused_naming_its_line_and_column() {
    let _one = ONE_AT_A_TIME.lock().await;
    let gw = gateway(&[]).await;
    let bob = gw.token("bob", EE_DATA);
    let mut csv = b"id,text\n1,short\n2,".to_vec();
    csv.resize(csv.len() + (2 << 20), b'a');
    csv.extend_from_slice(b"\n3,end\n");
    let (status, _, refused) = post(
        &gw,
        &bob,
        "/v1/datasets?tenant=est-ensemble&name=notes&classification=open&format=csv",
        csv,
        "text/csv",
    )
    .await;
    assert_error(&(status, refused.clone()), 422, "too_large");
    let message = refused["error"]["message"].as_str().expect("message");
    for part in [
        "line 3, column \"text\"",
        "2.0 MiB",
        "1.0 MiB",
        "--max-csv-field",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert_eq!(temporary_files(&gw), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_concurrency_limit_wait_then_get_503() {
    let _one = ONE_AT_A_TIME.lock().await;
    let gw = gateway(&["--max-concurrent-ingests", "1", "--ingest-queue-wait", "2s"]).await;
    let bob = gw.token("bob", EE_DATA);
    let upload = |name: &'static str| {
        let (gw, bob) = (&gw, &bob);
        async move {
            post(
                gw,
                bob,
                &format!(
                    "/v1/datasets?tenant=est-ensemble&name={name}&classification=open&format=csv"
                ),
                b"a,b\n1,2\n".to_vec(),
                "text/csv",
            )
            .await
        }
    };

    // The one permit is taken (as by a long ingest): the upload waits 2 s, then 503.
    let ingests = gw.app().data.ingests.clone();
    let held = ingests.clone().acquire_owned().await.expect("permit");
    let started = std::time::Instant::now();
    let (status, headers, refused) = upload("first").await;
    assert_error(&(status, refused.clone()), 503, "ingest_busy");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let message = refused["error"]["message"].as_str().expect("message");
    assert!(message.contains("--max-concurrent-ingests"), "{message}");

    // Freed within the wait: the queued upload goes through.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(held);
    });
    let (status, _, created) = upload("second").await;
    assert_eq!(status, 201, "{created}");
    release.await.expect("release");
    assert_eq!(ingests.available_permits(), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_ingest_stops_and_leaves_no_temporary_file() {
    let _one = ONE_AT_A_TIME.lock().await;
    let gw = gateway(&["--upload-timeout", "2s", "--max-concurrent-ingests", "1"]).await;
    let bob = gw.token("bob", EE_DATA);
    // Within every limit but long to ingest: 2 KiB values repeated 4 million times (8 GiB
    // to expand and encode, 16 MiB per batch).
    let slow = bombs::dictionary_bomb(2048, 4_000_000);
    let (status, _, refused) = post(
        &gw,
        &bob,
        "/v1/datasets?tenant=est-ensemble&name=slow&classification=open&format=parquet",
        slow,
        PARQUET,
    )
    .await;
    assert_error(&(status, refused), 503, "timeout");
    // The ingest thread gives its permit back when it ends: it stopped at its next batch.
    let ingests = gw.app().data.ingests.clone();
    eventually(10, "the timed-out ingest to stop", || {
        let free = ingests.available_permits() == 1;
        async move { free.then_some(()) }
    })
    .await;
    assert_eq!(temporary_files(&gw), 0);
    gw.stop().await;
}

/// Files left in the gateway's private temporary directory.
fn temporary_files(gw: &Gateway) -> usize {
    std::fs::read_dir(gw.data_dir.join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0)
}
