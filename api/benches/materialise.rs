//! What `POST /v1/grants` costs on a large dataset, against DuckDB doing the same query, and
//! what serving a view costs against a plain S3 GET (release build, one thread each):
//!
//!     cargo bench -p serre-api --bench materialise -- [--size-mb N] [--runs N] [--serve]
//!     cargo bench -p serre-api --bench materialise -- --serve-only [--size-mb N]
//!
//! (or `SERRE_BENCH_SIZE_MB=N`; default 1024 MB of Parquet.)
//!
//! 1. Materialise. A synthetic 10-column Parquet dataset (ZSTD, generated once into
//!    `~/.cache/serre/bench/` and reused) is stored encrypted in a `BlobStore` on a local
//!    temp dir. Timed: open the encrypted dataset, decrypt on demand, project 5 of the 10
//!    columns, keep `age < 50` (about half the rows), pseudonymise `name` and `email`,
//!    write Parquet, encrypt and store it (`grants::spec` + `grants::materialise_to` +
//!    `BlobStore::put_file`, as the handler does). Baseline: DuckDB (PyPI `duckdb` in the
//!    venv `~/.cache/serre/python-duckdb-2.0.1`, which deploy/dev/bench-datasets.sh makes;
//!    the bench fails without it; `SET threads=1`, timed inside Python around the `COPY`
//!    only) reading the plaintext file: `COPY (SELECT <same 5 columns> … WHERE age < 50)
//!    TO … (FORMAT parquet, COMPRESSION zstd)`, plain, and with Serre's own pseudonyms
//!    computed in SQL (HMAC-SHA-256 under the grant's key, 16 bytes, base64url: the same
//!    output, checked equal row for row on the first 4096 rows). Serre and the two DuckDB
//!    queries alternate run by run; medians and the median per-run ratio are reported.
//!    Peak RSS (VmHWM, reset before the timed part) of this process.
//! 2. `--serve`: the view, stored encrypted in a real Garage (`deploy/dev/garage.sh`),
//!    read whole with `BlobStore::get_stream` (download + decrypt + verify, as the
//!    Delta Sharing file link serves it) against a plain object_store GET of an unencrypted
//!    copy of the same bytes from the same bucket. MB/s and the ratio (target ≥ 0.8).
//!    Then the memory of a `Range: bytes=0-` read of the whole view (what Delta Sharing
//!    clients send): peak RSS above the resident set before it (VmHWM, reset), for
//!    `BlobStore::get_range_stream` consumed chunk by chunk (what `serve_view` sends)
//!    against `BlobStore::get_range` (the range in one buffer).
//!    `--serve-only` skips step 1 (no DuckDB needed) and serves the synthetic dataset
//!    itself in place of a view.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{
    ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serre_api::blobs::{BlobBackend, BlobStore};
use serre_api::data::{ColumnRule, Recipe};
use serre_crypto::{Kek, KekRing};

#[path = "common/duckdb.rs"]
mod duckdb;

const COLUMNS: [&str; 5] = ["id", "name", "email", "age", "income"];
const FILTER: &str = "age < 50";
const MB: f64 = 1024.0 * 1024.0;

struct Args {
    size_mb: u64,
    runs: u32,
    serve: bool,
    serve_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        size_mb: std::env::var("SERRE_BENCH_SIZE_MB")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1024),
        runs: 1,
        serve: false,
        serve_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--size-mb" => a.size_mb = it.next().and_then(|s| s.parse().ok()).expect("--size-mb N"),
            "--runs" => a.runs = it.next().and_then(|s| s.parse().ok()).expect("--runs N"),
            "--serve" => a.serve = true,
            "--serve-only" => a.serve_only = true,
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// xorshift64*: fast, deterministic, good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const FIRST: [&str; 24] = [
    "Camille", "Léa", "Manon", "Chloé", "Inès", "Jade", "Louise", "Emma", "Alice", "Lina", "Lucas",
    "Hugo", "Louis", "Nathan", "Gabriel", "Arthur", "Jules", "Adam", "Raphaël", "Mohamed", "Yanis",
    "Karim", "Fatou", "Aïcha",
];
const LAST: [&str; 20] = [
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Diallo", "Nguyen",
];
const COMMUNES: [&str; 9] = [
    "Montreuil",
    "Bagnolet",
    "Bobigny",
    "Bondy",
    "Noisy-le-Sec",
    "Pantin",
    "Romainville",
    "Les Lilas",
    "Le Pré-Saint-Gervais",
];

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("email", DataType::Utf8, true),
        Field::new("age", DataType::Int64, true),
        Field::new("postcode", DataType::Utf8, true),
        Field::new("commune", DataType::Utf8, true),
        Field::new("income", DataType::Float64, true),
        Field::new("score", DataType::Float64, true),
        Field::new("birth", DataType::Date32, true),
        Field::new(
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
    ]))
}

fn batch(rng: &mut Rng, start: i64, rows: usize) -> RecordBatch {
    let mut name = Vec::with_capacity(rows);
    let mut email = Vec::with_capacity(rows);
    let mut age = Vec::with_capacity(rows);
    let mut postcode = Vec::with_capacity(rows);
    let mut commune = Vec::with_capacity(rows);
    let mut income = Vec::with_capacity(rows);
    let mut score = Vec::with_capacity(rows);
    let mut birth = Vec::with_capacity(rows);
    let mut updated = Vec::with_capacity(rows);
    for i in 0..rows {
        let first = FIRST[rng.below(FIRST.len() as u64) as usize];
        let last = LAST[rng.below(LAST.len() as u64) as usize];
        let tag = rng.next();
        name.push(format!("{first} {last}-{:04x}", tag & 0xffff));
        email.push(format!(
            "{}.{}{:x}@example.fr",
            first.to_lowercase(),
            last.to_lowercase(),
            tag >> 40
        ));
        let a = rng.below(100) as i64;
        age.push(a);
        postcode.push(format!("93{:03}", rng.below(1000)));
        commune.push(COMMUNES[rng.below(COMMUNES.len() as u64) as usize]);
        income.push((rng.below(10_000_000) as f64) / 100.0);
        score.push((rng.next() >> 11) as f64 / (1u64 << 53) as f64);
        birth.push(20_000 - (a as i32) * 365 - rng.below(365) as i32);
        updated.push(
            1_700_000_000_000_000 + (start + i as i64) * 1_000_000 + rng.below(1_000_000) as i64,
        );
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(start..start + rows as i64)),
        Arc::new(StringArray::from(name)),
        Arc::new(StringArray::from(email)),
        Arc::new(Int64Array::from(age)),
        Arc::new(StringArray::from(postcode)),
        Arc::new(StringArray::from(commune)),
        Arc::new(Float64Array::from(income)),
        Arc::new(Float64Array::from(score)),
        Arc::new(Date32Array::from(birth)),
        Arc::new(TimestampMicrosecondArray::from(updated)),
    ];
    RecordBatch::try_new(schema(), columns).expect("batch")
}

/// The plaintext dataset of about `size_mb` MB, generated once.
fn dataset(size_mb: u64) -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let dir = std::env::var("SERRE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&home).join(".cache/serre"))
        .join("bench");
    std::fs::create_dir_all(&dir).expect("cache dir");
    let path = dir.join(format!("people-{size_mb}mb.parquet"));
    if path.exists() {
        return path;
    }
    let start = Instant::now();
    let tmp = dir.join(format!("people-{size_mb}mb.parquet.tmp"));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level")))
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let file = std::fs::File::create(&tmp).expect("create dataset");
    let mut w =
        ArrowWriter::try_new(std::io::BufWriter::new(file), schema(), Some(props)).expect("writer");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut next = 0i64;
    let target = size_mb * 1024 * 1024;
    const ROWS: usize = 64 * 1024;
    // bytes_written counts flushed row groups only; in-progress ones are bounded.
    while (w.bytes_written() + w.in_progress_size()) < target as usize {
        w.write(&batch(&mut rng, next, ROWS)).expect("write");
        next += ROWS as i64;
    }
    w.close().expect("close");
    std::fs::rename(&tmp, &path).expect("rename");
    eprintln!(
        "generated {} ({} rows, {:.0} MB) in {:.1}s",
        path.display(),
        next,
        std::fs::metadata(&path).unwrap().len() as f64 / MB,
        start.elapsed().as_secs_f64()
    );
    path
}

/// Reset the peak RSS (VmHWM) of this process.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// A `kB` line of /proc/self/status, in MiB.
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn parquet_rows(path: &Path) -> i64 {
    let f = std::fs::File::open(path).expect("open");
    parquet::file::reader::SerializedFileReader::new(f)
        .map(|r| {
            parquet::file::reader::FileReader::metadata(&r)
                .file_metadata()
                .num_rows()
        })
        .expect("parquet footer")
}

/// The first `n` values of string column `column` of a Parquet file.
fn first_strings(path: &Path, column: &str, n: usize) -> Vec<Option<String>> {
    use arrow_array::cast::AsArray;
    let f = std::fs::File::open(path).expect("open");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .expect("parquet")
        .with_batch_size(n)
        .build()
        .expect("reader");
    let batch = reader.into_iter().next().expect("a batch").expect("batch");
    let array = batch.column_by_name(column).expect("column");
    let strings = array
        .as_string_opt::<i32>()
        .map(|a| a.iter().map(|v| v.map(str::to_owned)).collect::<Vec<_>>());
    strings
        .or_else(|| {
            array
                .as_string_view_opt()
                .map(|a| a.iter().map(|v| v.map(str::to_owned)).collect())
        })
        .expect("a string column")
}

fn ring() -> KekRing {
    KekRing::new(Kek::generate("k1").expect("kek"), vec![]).expect("ring")
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() {
    let args = args();
    serre_api::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let input = dataset(args.size_mb);
    let input_mb = std::fs::metadata(&input).unwrap().len() as f64 / MB;
    let rows_in = parquet_rows(&input);
    println!(
        "dataset: {} ({input_mb:.0} MB, {rows_in} rows, 10 columns, ZSTD)",
        input.display()
    );
    if args.serve_only {
        rt.block_on(serve(&input, args.runs.max(3)));
        return;
    }

    let tmp = tempfile::tempdir().expect("temp dir");
    let store = BlobStore::new(
        BlobBackend::Local {
            dir: tmp.path().join("blobs"),
        },
        ring(),
    )
    .expect("store");
    let stored = rt
        .block_on(store.put_file("tenants/t/datasets/d/v1.parquet", &input))
        .expect("store dataset");
    let blob = stored.blob_ref();

    let mut recipe = Recipe::default();
    recipe
        .columns
        .insert("name".into(), ColumnRule::Pseudonymise);
    recipe
        .columns
        .insert("email".into(), ColumnRule::Pseudonymise);
    let columns: Vec<String> = COLUMNS.iter().map(|s| s.to_string()).collect();

    // Serre (what POST /v1/grants does), then DuckDB on the plaintext, plainly and with
    // the same keyed pseudonyms, interleaved run by run (the machine is shared).
    let python = duckdb::python();
    let secret = b"bench-secret-bench-secret-bench!";
    let view = tmp.path().join("view.parquet");
    let dout = tmp.path().join("duck.parquet");
    let plain_sel = COLUMNS.join(", ");
    let (mut serre, mut mat, mut put, mut dplain, mut dkeyed) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut rows_out = 0;
    let mut peak = 0.0f64;
    for run in 0..args.runs {
        let grant = format!("g{run}");
        reset_peak_rss();
        let t = Instant::now();
        let stored_view = rt.block_on(async {
            let reader = store.open_reader(&blob).await.expect("open reader");
            let schema = serre_api::grants::parquet_schema(&reader).expect("schema");
            let spec =
                serre_api::grants::spec(&columns, &recipe, Some(FILTER), &schema, secret, &grant)
                    .expect("spec");
            let report =
                serre_api::grants::materialise_to(reader, &spec, &view).expect("materialise");
            mat.push(t.elapsed().as_secs_f64());
            rows_out = report.rows_out;
            let t2 = Instant::now();
            let s = store
                .put_file(&format!("tenants/t/grants/{grant}/view.parquet"), &view)
                .await
                .expect("store view");
            put.push(t2.elapsed().as_secs_f64());
            s
        });
        serre.push(t.elapsed().as_secs_f64());
        peak = peak.max(peak_rss_mb());
        let _ = stored_view;

        dplain.push(duckdb::copy(&python, &input, &dout, &plain_sel, FILTER));
        assert_eq!(
            parquet_rows(&dout) as u64,
            rows_out,
            "DuckDB kept other rows"
        );
        let key = duckdb::grant_key(secret, &grant);
        let keyed_sel = format!(
            "id, {}, {}, age, income",
            duckdb::keyed_pseudonym_sql("name", &key),
            duckdb::keyed_pseudonym_sql("email", &key)
        );
        dkeyed.push(duckdb::copy(&python, &input, &dout, &keyed_sel, FILTER));
        // The same output: DuckDB's keyed hash gives Serre's pseudonyms, row for row.
        for column in ["name", "email"] {
            let (ours, theirs) = (
                first_strings(&view, column, 4096),
                first_strings(&dout, column, 4096),
            );
            assert_eq!(
                ours, theirs,
                "DuckDB's {column} pseudonyms differ from Serre's"
            );
        }
        println!(
            "run {}: serre {:.2} s, duckdb plain {:.2} s, duckdb keyed {:.2} s; ratios {:.2} / {:.2}",
            run + 1,
            serre[run as usize],
            dplain[run as usize],
            dkeyed[run as usize],
            serre[run as usize] / dplain[run as usize],
            serre[run as usize] / dkeyed[run as usize]
        );
    }
    let view_mb = std::fs::metadata(&view).unwrap().len() as f64 / MB;
    let duck_mb = std::fs::metadata(&dout).unwrap().len() as f64 / MB;
    let ratios = |d: &[f64]| {
        let mut r: Vec<f64> = serre.iter().zip(d).map(|(s, d)| s / d).collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let (s, d, h) = (median(&serre), median(&dplain), median(&dkeyed));
    println!(
        "rows in {rows_in}, rows out {rows_out}; view {view_mb:.0} MB (DuckDB keyed output {duck_mb:.0} MB); pseudonyms checked equal on the first 4096 rows"
    );
    println!(
        "serre  materialise+put_file      {s:>8.2} s  ({:.2} s materialise incl. decrypt, {:.2} s put_file)  {:.0} MB/s of input",
        median(&mat),
        median(&put),
        input_mb / s
    );
    println!(
        "duckdb COPY, projection+filter  {d:>8.2} s  {:.0} MB/s  ratio serre/duckdb {:.2} (target <= 1.0)",
        input_mb / d,
        ratios(&dplain)
    );
    println!(
        "duckdb COPY, same keyed pseudonyms {h:>5.2} s  {:.0} MB/s  ratio serre/duckdb {:.2}",
        input_mb / h,
        ratios(&dkeyed)
    );
    println!("serre peak RSS (VmHWM)          {peak:>8.0} MB");
    println!(
        "(medians of {} interleaved run(s), ratios = median of the per-run ratios; serre on a current-thread runtime, put_file encrypts on one blocking thread while uploading)",
        args.runs
    );

    if args.serve {
        rt.block_on(serve(&view, args.runs.max(3)));
    }
}

// ---------------------------------------------------------------------------------------
// 2. Serving a view from Garage: decrypting stream vs plain GET.

fn garage_start() -> HashMap<String, String> {
    let dir = match std::env::var("SERRE_TEST_GARAGE_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => {
            let pid = std::process::id();
            let dir = std::env::temp_dir().join(format!("serre-bench-garage-{pid}"));
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev/garage.sh");
            let ok = Command::new(script)
                .arg("start")
                .arg(&dir)
                .env(
                    "SERRE_GARAGE_PORT_BASE",
                    (52000 + (pid % 2000) * 5).to_string(),
                )
                .env("SERRE_GARAGE_PARENT_PID", pid.to_string())
                .status()
                .expect("deploy/dev/garage.sh")
                .success();
            assert!(ok, "garage.sh start failed");
            dir
        }
    };
    std::fs::read_to_string(dir.join("env"))
        .expect("garage env")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn admin(
    http: &reqwest::Client,
    env: &HashMap<String, String>,
    op: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let token = std::fs::read_to_string(&env["SERRE_GARAGE_ADMIN_TOKEN_FILE"]).expect("token");
    let resp = http
        .post(format!("{}/v2/{op}", env["SERRE_GARAGE_ADMIN_ENDPOINT"]))
        .bearer_auth(token.trim())
        .json(&body)
        .send()
        .await
        .expect(op);
    assert!(resp.status().is_success(), "{op}: {}", resp.status());
    resp.json().await.unwrap_or(serde_json::Value::Null)
}

async fn serve(view: &Path, runs: u32) {
    use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
    let env = tokio::task::spawn_blocking(garage_start).await.unwrap();
    let http = reqwest::Client::new();
    let bucket = format!("serre-bench-{}", std::process::id());
    let b = admin(
        &http,
        &env,
        "CreateBucket",
        serde_json::json!({ "globalAlias": bucket }),
    )
    .await;
    let k = admin(
        &http,
        &env,
        "CreateKey",
        serde_json::json!({ "name": bucket }),
    )
    .await;
    let (key_id, secret) = (
        k["accessKeyId"].as_str().unwrap().to_owned(),
        k["secretAccessKey"].as_str().unwrap().to_owned(),
    );
    admin(
        &http,
        &env,
        "AllowBucketKey",
        serde_json::json!({ "bucketId": b["id"], "accessKeyId": key_id,
            "permissions": { "read": true, "write": true, "owner": true } }),
    )
    .await;
    let backend = BlobBackend::S3 {
        endpoint: env["SERRE_S3_ENDPOINT"].clone(),
        bucket: bucket.clone(),
        region: env["SERRE_S3_REGION"].clone(),
        access_key_id: key_id.clone(),
        secret_access_key: secret.clone(),
    };
    let store = BlobStore::new(backend, ring()).expect("S3 blob store");
    let stored = store
        .put_file("tenants/t/grants/g/view.parquet", view)
        .await
        .expect("put view");
    let blob = stored.blob_ref();
    let raw: Arc<dyn ObjectStore> = Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&env["SERRE_S3_ENDPOINT"])
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region(&env["SERRE_S3_REGION"])
            .with_bucket_name(&bucket)
            .with_access_key_id(&key_id)
            .with_secret_access_key(&secret)
            .build()
            .expect("raw S3"),
    );
    let raw_path = object_store::path::Path::from("raw/view.parquet");
    let bytes = std::fs::read(view).expect("read view");
    let upload = raw.put_multipart(&raw_path).await.expect("multipart");
    let mut w = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
    w.write(&bytes);
    w.finish().await.expect("raw upload");
    let size = bytes.len() as u64;
    drop(bytes);

    let (mut enc, mut plain) = (vec![], vec![]);
    for _ in 0..runs {
        let t = Instant::now();
        let mut s = store.get_stream(&blob).await.expect("get_stream");
        let mut n = 0u64;
        while let Some(c) = s.next().await {
            n += c.expect("chunk").len() as u64;
        }
        assert_eq!(n, size);
        enc.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut s = raw.get(&raw_path).await.expect("get").into_stream();
        let mut n = 0u64;
        while let Some(c) = s.next().await {
            n += c.expect("chunk").len() as u64;
        }
        assert_eq!(n, size);
        plain.push(t.elapsed().as_secs_f64());
    }
    let mb = size as f64 / MB;
    let (e, p) = (min(&enc), min(&plain));
    println!("serve {mb:.0} MB view from Garage (best of {runs}):");
    println!(
        "  BlobStore::get_stream (decrypting)  {e:>7.3} s  {:>7.0} MB/s",
        mb / e
    );
    println!(
        "  plain object_store GET              {p:>7.3} s  {:>7.0} MB/s",
        mb / p
    );
    println!(
        "  ratio throughput encrypted/plain    {:.2}  (target ≥ 0.8)",
        p / e
    );

    // Memory of `Range: bytes=0-` over the whole view: streamed (what serve_view sends,
    // chunk by chunk) against the same range in one buffer. Peak RSS above what was
    // resident before, the streamed read first (nothing large freed before it).
    let whole = 0..blob.plain_size;
    let before = rss_mb();
    reset_peak_rss();
    let mut s = store
        .get_range_stream(&blob, whole.clone())
        .await
        .expect("get_range_stream");
    let (mut n, mut largest) = (0u64, 0usize);
    while let Some(c) = s.next().await {
        let c = c.expect("chunk");
        n += c.len() as u64;
        largest = largest.max(c.len());
    }
    drop(s);
    assert_eq!(n, size);
    let streamed = peak_rss_mb() - before;
    let before = rss_mb();
    reset_peak_rss();
    let all = store.get_range(&blob, whole).await.expect("get_range");
    assert_eq!(all.len() as u64, size);
    let buffered = peak_rss_mb() - before;
    drop(all);
    println!("range bytes=0- of the {mb:.0} MB view, peak RSS above the resident set:");
    println!(
        "  BlobStore::get_range_stream         {streamed:>7.2} MB  (largest chunk {} KiB)",
        largest / 1024
    );
    println!("  BlobStore::get_range (one buffer)   {buffered:>7.2} MB");
}
