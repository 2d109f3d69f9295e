//! The encrypted blob store against a real Garage, started with the project's script
//! (`deploy/dev/garage.sh`; the binary is cached under ~/.cache/serre). The bucket and
//! key are made through Garage's admin API v2; what lands in Garage is read back with a
//! plain S3 client to check it is not the plaintext.
//!
//! `SERRE_TEST_GARAGE_DIR`: use the node already running with its state in that
//! directory (as `garage.sh start DIR` left it) instead of starting one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use serre_api::blobs::{BlobBackend, BlobStore, StoredBlob};
use serre_crypto::{Kek, KekRing, ciphertext_len};
use sha2::{Digest, Sha256};

const SEG: usize = 64 * 1024;

/// A Garage node for this test binary: its `env` file and an S3 key with a bucket.
struct Garage {
    env: HashMap<String, String>,
    bucket: String,
    access_key_id: String,
    secret_access_key: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev/garage.sh")
}

fn start_node() -> PathBuf {
    if let Ok(dir) = std::env::var("SERRE_TEST_GARAGE_DIR") {
        return PathBuf::from(dir);
    }
    let pid = std::process::id();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    // State of earlier runs whose process is gone (their node stopped with them).
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let old_pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("serre-api-garage-"))
            .and_then(|p| p.parse::<u32>().ok());
        if old_pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = root.join(format!("serre-api-garage-{pid}"));
    // Ports away from the operator tests' (40000 + …).
    let base = 50000 + (pid % 2000) * 5;
    let status = Command::new(script())
        .arg("start")
        .arg(&dir)
        .env("SERRE_GARAGE_PORT_BASE", base.to_string())
        // The script stops the node once this test process is gone.
        .env("SERRE_GARAGE_PARENT_PID", pid.to_string())
        .status()
        .expect("run deploy/dev/garage.sh");
    assert!(status.success(), "garage.sh start failed");
    dir
}

impl Garage {
    async fn start() -> Self {
        let dir = tokio::task::spawn_blocking(start_node).await.unwrap();
        let env: HashMap<String, String> = std::fs::read_to_string(dir.join("env"))
            .expect("garage env file")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let token = std::fs::read_to_string(&env["SERRE_GARAGE_ADMIN_TOKEN_FILE"])
            .expect("admin token")
            .trim()
            .to_owned();
        let admin = Admin {
            endpoint: env["SERRE_GARAGE_ADMIN_ENDPOINT"].clone(),
            token,
            http: reqwest::Client::new(),
        };
        let suffix = format!("{}-{}", std::process::id(), rand_suffix());
        let bucket = format!("serre-blobs-{suffix}");
        let created = admin
            .call("CreateBucket", json!({ "globalAlias": bucket }))
            .await;
        let bucket_id = created["id"].as_str().expect("bucket id").to_owned();
        let key = admin
            .call(
                "CreateKey",
                json!({ "name": format!("serre-blobs-{suffix}") }),
            )
            .await;
        let access_key_id = key["accessKeyId"].as_str().expect("key id").to_owned();
        let secret_access_key = key["secretAccessKey"].as_str().expect("secret").to_owned();
        admin
            .call(
                "AllowBucketKey",
                json!({
                    "bucketId": bucket_id,
                    "accessKeyId": access_key_id,
                    "permissions": { "read": true, "write": true, "owner": true },
                }),
            )
            .await;
        Self {
            env,
            bucket,
            access_key_id,
            secret_access_key,
        }
    }

    fn backend(&self) -> BlobBackend {
        BlobBackend::S3 {
            endpoint: self.env["SERRE_S3_ENDPOINT"].clone(),
            bucket: self.bucket.clone(),
            region: self.env["SERRE_S3_REGION"].clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        }
    }

    /// The bucket through a plain S3 client: the stored (encrypted) bytes.
    fn raw(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&self.env["SERRE_S3_ENDPOINT"])
                .with_allow_http(true)
                .with_virtual_hosted_style_request(false)
                .with_region(&self.env["SERRE_S3_REGION"])
                .with_bucket_name(&self.bucket)
                .with_access_key_id(&self.access_key_id)
                .with_secret_access_key(&self.secret_access_key)
                .build()
                .unwrap(),
        )
    }

    /// Whether any file under Garage's data directory contains `needle`.
    fn data_dir_contains(&self, needle: &[u8]) -> bool {
        fn walk(p: &Path, needle: &[u8]) -> bool {
            let Ok(entries) = std::fs::read_dir(p) else {
                return false;
            };
            entries.flatten().any(|e| {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, needle)
                } else {
                    std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
                }
            })
        }
        walk(Path::new(&self.env["GARAGE_DATA_DIR"]), needle)
    }
}

fn rand_suffix() -> String {
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    hex::encode(b)
}

struct Admin {
    endpoint: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    async fn call(&self, operation: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/v2/{operation}", self.endpoint))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{operation}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{operation}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// One node for the whole test binary (tests run concurrently, each on its runtime).
static GARAGE: tokio::sync::OnceCell<Garage> = tokio::sync::OnceCell::const_new();

async fn garage() -> &'static Garage {
    GARAGE
        .get_or_init(|| async {
            serre_api::install_crypto_provider();
            Garage::start().await
        })
        .await
}

fn ring() -> KekRing {
    KekRing::new(Kek::generate("kek-test").unwrap(), vec![]).unwrap()
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes()[0])
        .collect()
}

async fn put(store: &BlobStore, dir: &Path, key: &str, data: &[u8]) -> StoredBlob {
    let src = dir.join("plain.tmp");
    std::fs::write(&src, data).unwrap();
    let stored = store.put_file(key, &src).await.unwrap();
    std::fs::remove_file(&src).unwrap();
    stored
}

// One test function: the node, bucket and key are made once for the whole round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_blobs_in_garage() {
    let g = garage().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::new(g.backend(), ring()).unwrap();
    store.check().await.expect("bucket reachable");
    let raw = g.raw();

    for len in [0, 1, SEG, (1 << 20) + 3, 8 * 1024 * 1024 + 5] {
        let key = format!("tenants/acme/datasets/d{len}/v1.parquet");
        let plain = plaintext(len);
        let stored = put(&store, tmp.path(), &key, &plain).await;
        assert_eq!(stored.plain_size, len as u64);
        assert_eq!(stored.stored_size, ciphertext_len(len as u64));
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&plain)));

        // What Garage holds: the encrypted format, without the plaintext.
        let held = raw
            .get(&key.as_str().into())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(held.len() as u64, stored.stored_size, "len {len}");
        assert!(held.starts_with(b"SERREC"));
        if len >= 64 {
            let needle = &plain[len / 2..len / 2 + 64];
            assert!(!held.windows(64).any(|w| w == needle));
            assert!(!g.data_dir_contains(needle), "len {len}: plaintext on disk");
        }

        let blob = stored.blob_ref();
        let streamed: Vec<Bytes> = store
            .get_stream(&blob)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(streamed.concat(), plain, "stream, len {len}");

        let l = len as u64;
        let s = SEG as u64;
        for r in [
            0..l,
            0..l.min(1),
            l.saturating_sub(1)..l,
            l.min(s - 1)..l.min(s + 1),
            l.min(s + 5)..l.min(5 * s),
            l / 3..l / 2,
        ] {
            let got = store.get_range(&blob, r.clone()).await.unwrap();
            assert_eq!(
                &got[..],
                &plain[r.start as usize..r.end as usize],
                "get_range len {len} {r:?}"
            );
            // Streamed as Garage sends it: one verified segment (at most) per chunk.
            let chunks: Vec<Bytes> = store
                .get_range_stream(&blob, r.clone())
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            assert!(chunks.iter().all(|c| c.len() <= SEG), "len {len} {r:?}");
            assert_eq!(
                chunks.concat(),
                &plain[r.start as usize..r.end as usize],
                "get_range_stream len {len} {r:?}"
            );
        }
        let reader = store.open_reader(&blob).await.unwrap();
        assert_eq!(&reader.read_range(0..l).unwrap()[..], &plain[..]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_tampering_wrong_key_and_delete_in_garage() {
    let g = garage().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::new(g.backend(), ring()).unwrap();
    let raw = g.raw();

    // Parquet through the S3 reader (downloaded encrypted to a temp file).
    let rows = 10_000;
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| format!("parcelle-{i}")),
    ));
    let batch = RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap();
    let src = tmp.path().join("in.parquet");
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(&src).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let key = "tenants/acme/datasets/parcelles/v1.parquet";
    let stored = store.put_file(key, &src).await.unwrap();
    let blob = stored.blob_ref();
    let reader = store.open_reader(&blob).await.unwrap();
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(reader)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let back = arrow_select::concat::concat_batches(&batch.schema(), &batches).unwrap();
    assert_eq!(back, batch);

    // Another KEK cannot open it.
    let other = BlobStore::new(g.backend(), ring()).unwrap();
    let err = other.get_range(&blob, 0..4).await.unwrap_err();
    assert_eq!(err.category(), "key_unwrap", "{err}");

    // A modified object in the bucket fails authentication.
    let plain = plaintext(3 * SEG);
    let stored = put(&store, tmp.path(), "tenants/acme/t/v1.bin", &plain).await;
    let path = object_store::path::Path::from("tenants/acme/t/v1.bin");
    let mut held = raw
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    held[44 + SEG + 16 + 3] ^= 1;
    raw.put(&path, PutPayload::from(held.clone()))
        .await
        .unwrap();
    let s = SEG as u64;
    let err = store
        .get_range(&stored.blob_ref(), s..s + 1)
        .await
        .unwrap_err();
    assert_eq!(err.category(), "integrity", "{err}");
    assert_eq!(
        &store.get_range(&stored.blob_ref(), 0..8).await.unwrap()[..],
        &plain[..8]
    );
    // Streamed from the start: segment 0 goes out, segment 1 ends the stream.
    let mut stream = store
        .get_range_stream(&stored.blob_ref(), 0..3 * s)
        .await
        .unwrap();
    assert_eq!(
        &stream.try_next().await.unwrap().unwrap()[..],
        &plain[..SEG]
    );
    let err = stream.try_next().await.unwrap_err();
    assert_eq!(err.category(), "integrity", "{err}");

    // Cut in the bucket: the length Garage reports no longer matches the cached
    // layout, so even a read far from the end is refused.
    held.truncate(held.len() - 5);
    raw.put(&path, PutPayload::from(held)).await.unwrap();
    let err = store
        .get_range_stream(&stored.blob_ref(), 0..8)
        .await
        .err()
        .expect("a truncated object is refused");
    assert_eq!(err.category(), "integrity", "{err}");

    // Delete; a second delete and a never-stored key are fine.
    store.delete(key).await.unwrap();
    store.delete(key).await.unwrap();
    store.delete("tenants/none/x.parquet").await.unwrap();
    assert!(matches!(
        raw.head(&key.into()).await,
        Err(object_store::Error::NotFound { .. })
    ));
    assert_eq!(
        store.get_range(&blob, 0..1).await.unwrap_err().category(),
        "not_found"
    );

    // Readiness fails with a wrong secret or a missing bucket.
    let BlobBackend::S3 {
        endpoint,
        bucket,
        region,
        access_key_id,
        secret_access_key,
    } = g.backend()
    else {
        unreachable!()
    };
    let bad_secret = BlobStore::new(
        BlobBackend::S3 {
            endpoint: endpoint.clone(),
            bucket: bucket.clone(),
            region: region.clone(),
            access_key_id: access_key_id.clone(),
            secret_access_key: format!("{secret_access_key}x"),
        },
        ring(),
    )
    .unwrap();
    assert!(bad_secret.check().await.is_err());
    let no_bucket = BlobStore::new(
        BlobBackend::S3 {
            endpoint,
            bucket: format!("{bucket}-missing"),
            region,
            access_key_id,
            secret_access_key,
        },
        ring(),
    )
    .unwrap();
    assert!(no_bucket.check().await.is_err());
}
