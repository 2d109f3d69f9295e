//! A run's results: the sandbox bucket from its Secret, result paths, listing, reading,
//! and writing what the run uploads (the run's pod holds no storage credential: it sends
//! each file to the gateway, which writes it here with the sandbox's keys).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::cluster::ClusterError;
use crate::sandboxes::FieldIssue;
use crate::store::RunRow;

use super::OutputsError;

/// The Secret of a sandbox namespace holding its bucket's settings (written by the operator
/// when object storage is on).
pub const STORAGE_SECRET: &str = "sandbox-storage";
/// At most this many objects in a results listing (`truncated` says when there are more).
pub const MAX_RESULTS: usize = 10_000;
/// Longest result path accepted (bytes).
pub const MAX_PATH_BYTES: usize = 1024;
/// A result upload is buffered up to this many bytes: smaller files are one PUT, larger
/// ones a multipart upload in parts of this size (S3's smallest part).
const WRITE_PART_BYTES: usize = 5 << 20;
/// Parts of one upload in flight at once: with the part being filled, at most three parts
/// (15 MiB) of a result are held in memory, whatever its size.
const WRITE_PARTS_IN_FLIGHT: usize = 2;

// ---- Results: the bucket ----------------------------------------------------------------

/// The sandbox bucket's settings, from the Secret `sandbox-storage`. Debug shows no key.
#[derive(Clone)]
pub struct StorageSettings {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    secret_access_key: Zeroizing<String>,
    /// Base64 of the 32-byte SSE-C key every object of the bucket is written with.
    sse_c_key_base64: Zeroizing<String>,
}

impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSettings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("sse_c_key_base64", &"<redacted>")
            .finish()
    }
}

impl StorageSettings {
    /// Read the Secret's entries. Errors name the entry, never its value.
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Result<Self, OutputsError> {
        let get = |key: &str| -> Result<Zeroizing<String>, OutputsError> {
            let v = data
                .get(key)
                .ok_or_else(|| OutputsError::Settings(format!("{key} is missing")))?;
            let s = std::str::from_utf8(&v.0)
                .map_err(|_| OutputsError::Settings(format!("{key} is not UTF-8")))?
                .trim();
            if s.is_empty() {
                return Err(OutputsError::Settings(format!("{key} is empty")));
            }
            Ok(Zeroizing::new(s.to_owned()))
        };
        if let Some(alg) = data.get("SSE_C_ALGORITHM")
            && alg.0 != b"AES256"
        {
            return Err(OutputsError::Settings(
                "SSE_C_ALGORITHM is not AES256".into(),
            ));
        }
        let sse_c_key_base64 = get("SSE_C_KEY")?;
        let key_len = base64::engine::general_purpose::STANDARD
            .decode(sse_c_key_base64.as_bytes())
            .map(|k| Zeroizing::new(k).len())
            .map_err(|_| OutputsError::Settings("SSE_C_KEY is not base64".into()))?;
        if key_len != 32 {
            return Err(OutputsError::Settings(
                "SSE_C_KEY is not a 32-byte key".into(),
            ));
        }
        Ok(Self {
            endpoint: get("AWS_ENDPOINT_URL")?.to_string(),
            region: get("AWS_REGION")?.to_string(),
            bucket: get("S3_BUCKET")?.to_string(),
            access_key_id: get("AWS_ACCESS_KEY_ID")?.to_string(),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY")?,
            sse_c_key_base64,
        })
    }

    /// An S3 client for the bucket, sending the SSE-C key with every read (path-style, as
    /// Garage wants; plain HTTP allowed, as in the sandbox's own Secret).
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>, OutputsError> {
        let s3 = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region(&self.region)
            .with_bucket_name(&self.bucket)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(self.secret_access_key.as_str())
            .with_ssec_encryption(self.sse_c_key_base64.as_str())
            .build()
            // object_store's configuration errors name options, not their values.
            .map_err(|e| OutputsError::Settings(e.to_string()))?;
        Ok(Arc::new(s3))
    }
}

/// The bucket of the run's sandbox, built for this request from the Secret of its
/// namespace (so a rewritten or deleted Secret takes effect at once, and no key outlives
/// the request). No Secret: storage is off for the sandbox (409).
pub async fn bucket(client: &Client, run: &RunRow) -> Result<Arc<dyn ObjectStore>, OutputsError> {
    let secret = Api::<Secret>::namespaced(client.clone(), &run.namespace)
        .get_opt(STORAGE_SECRET)
        .await
        .map_err(ClusterError::from_kube)?
        .ok_or_else(|| {
            OutputsError::StorageOff(format!(
                "sandbox {:?} has no object storage (no Secret {STORAGE_SECRET} in its \
                 namespace): runs there keep no results",
                run.sandbox
            ))
        })?;
    StorageSettings::from_secret_data(&secret.data.unwrap_or_default())?.store()
}

/// Where a run writes its results (`status.resultsPrefix` of its TrialRun).
pub fn results_prefix(run: &str) -> String {
    format!("runs/{run}/")
}

/// Check a result path (relative to the run's prefix): 1 to 1024 bytes, no leading `/`,
/// no empty, `.` or `..` segment, no backslash or control character.
pub fn validate_path(path: &str) -> Result<(), FieldIssue> {
    let bad = |m: &str| Err(FieldIssue::new("path", "result_path", m));
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return bad("must be 1 to 1024 bytes");
    }
    if path.starts_with('/') {
        return bad("must not start with '/'");
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad("must not have an empty, '.' or '..' segment");
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return bad("must not contain backslashes or control characters");
    }
    if ObjectPath::parse(path).is_err() {
        return bad("is not a valid object path");
    }
    Ok(())
}

/// Content type of a result by its extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("json") => "application/json",
        Some("csv") => "text/csv",
        Some("txt") => "text/plain",
        Some("parquet") => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
}

/// `Content-Disposition: attachment` naming the file (its last segment): an ASCII
/// fallback and, when needed, the UTF-8 name percent-encoded (RFC 6266).
pub fn content_disposition(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+ ()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ascii == name {
        return format!("attachment; filename=\"{name}\"");
    }
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// One object a run wrote.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultEntry {
    /// Key relative to the run's prefix `runs/<run>/`.
    pub path: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    pub etag: Option<String>,
}

/// `GET …/runs/{id}/results`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultListing {
    pub run: String,
    /// Where the run wrote: `runs/<run>/` in the sandbox bucket.
    pub prefix: String,
    /// In key order, at most 10 000.
    pub objects: Vec<ResultEntry>,
    /// True when the run wrote more objects than listed.
    pub truncated: bool,
}

fn bucket_error(e: object_store::Error) -> OutputsError {
    OutputsError::Bucket(e.to_string())
}

/// The objects under the run's prefix, at most `MAX_RESULTS`.
pub async fn list_results(
    store: &dyn ObjectStore,
    run: &str,
) -> Result<ResultListing, OutputsError> {
    let prefix = results_prefix(run);
    let dir = ObjectPath::from(prefix.trim_end_matches('/'));
    let mut stream = store.list(Some(&dir));
    let mut objects = Vec::new();
    let mut truncated = false;
    while let Some(meta) = stream.try_next().await.map_err(bucket_error)? {
        if objects.len() == MAX_RESULTS {
            truncated = true;
            break;
        }
        let key = meta.location.to_string();
        let path = key.strip_prefix(&prefix).unwrap_or(&key).to_owned();
        objects.push(ResultEntry {
            path,
            size: meta.size,
            last_modified: meta.last_modified,
            etag: meta.e_tag,
        });
    }
    objects.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(ResultListing {
        run: run.to_owned(),
        prefix,
        objects,
        truncated,
    })
}

/// One result being read.
pub struct ResultObject {
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
    pub body: BoxStream<'static, io::Result<Bytes>>,
}

/// Open one object of the run (a validated `path` relative to its prefix).
pub async fn open_result(
    store: &dyn ObjectStore,
    run: &str,
    path: &str,
) -> Result<ResultObject, OutputsError> {
    let key = ObjectPath::parse(format!("{}{path}", results_prefix(run)))
        .map_err(|e| OutputsError::NoSuchResult(format!("no result {path:?}: {e}")))?;
    let got = match store.get_opts(&key, GetOptions::default()).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(OutputsError::NoSuchResult(format!(
                "run {run:?} has no result {path:?}"
            )));
        }
        Err(e) => return Err(bucket_error(e)),
    };
    let meta = got.meta.clone();
    Ok(ResultObject {
        size: meta.size,
        etag: meta.e_tag,
        last_modified: meta.last_modified,
        body: got.into_stream().map_err(io::Error::other).boxed(),
    })
}

/// What a result upload wrote.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WrittenResult {
    pub run: String,
    /// Key relative to the run's prefix `runs/<run>/`.
    pub path: String,
    pub size: u64,
    pub etag: Option<String>,
}

/// Stream `body` into `runs/<run>/<path>` of the bucket (a validated `path`; the store
/// sends the sandbox's SSE-C key with every request): at most `limit` bytes, and at most
/// three 5 MiB parts in memory. Small files are one PUT; a larger one is a multipart
/// upload, aborted when the body breaks off or goes over the limit, so a partial object
/// never takes the name (an object already there keeps its old content then).
pub async fn write_result<S, E>(
    store: Arc<dyn ObjectStore>,
    run: &str,
    path: &str,
    mut body: S,
    limit: u64,
) -> Result<WrittenResult, OutputsError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let key = ObjectPath::parse(format!("{}{path}", results_prefix(run)))
        .map_err(|e| OutputsError::Bucket(format!("result key {path:?}: {e}")))?;
    let mut writer = BufWriter::with_capacity(store.clone(), key.clone(), WRITE_PART_BYTES)
        .with_max_concurrency(WRITE_PARTS_IN_FLIGHT)
        .with_attributes(Attributes::from_iter([(
            Attribute::ContentType,
            content_type(path),
        )]));
    let mut size = 0u64;
    let outcome = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| OutputsError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(OutputsError::TooLarge { limit });
            }
            writer.put(chunk).await.map_err(bucket_error)?;
        }
        writer
            .shutdown()
            .await
            .map_err(|e| OutputsError::Bucket(e.to_string()))
    }
    .await;
    if let Err(e) = outcome {
        // Nothing half-written stays: the multipart upload (if one began) is aborted.
        let _ = writer.abort().await;
        return Err(e);
    }
    let meta = store.head(&key).await.map_err(bucket_error)?;
    Ok(WrittenResult {
        run: run.to_owned(),
        path: path.to_owned(),
        size: meta.size,
        etag: meta.e_tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};
    #[test]
    fn result_paths_are_checked_and_typed() {
        for good in ["metrics.json", "a/b/c.csv", "out put.txt", "é.parquet"] {
            assert!(validate_path(good).is_ok(), "{good}");
        }
        let long = "a".repeat(1025);
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "../other-run/x",
            "a/..",
            "a/",
            "a\\b",
            "a\nb",
            long.as_str(),
        ] {
            let issue = validate_path(bad).unwrap_err();
            assert_eq!(
                (issue.field.as_str(), issue.rule.as_str()),
                ("path", "result_path")
            );
        }
        assert!(validate_path(&"a".repeat(1024)).is_ok());
        assert_eq!(content_type("x/metrics.JSON"), "application/json");
        assert_eq!(content_type("scores.csv"), "text/csv");
        assert_eq!(content_type("notes.txt"), "text/plain");
        assert_eq!(
            content_type("preds.parquet"),
            "application/vnd.apache.parquet"
        );
        assert_eq!(content_type("model.bin"), "application/octet-stream");
        assert_eq!(content_type("json"), "application/octet-stream");
        assert_eq!(content_type("dir.json/file"), "application/octet-stream");
        assert_eq!(
            content_disposition("a/metrics.json"),
            "attachment; filename=\"metrics.json\""
        );
        assert_eq!(
            content_disposition("a/r\"ésumé.txt"),
            "attachment; filename=\"r__sum_.txt\"; filename*=UTF-8''r%22%C3%A9sum%C3%A9.txt"
        );
    }

    fn secret_data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn storage_settings_come_from_the_secret_and_never_show_their_keys() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let mut pairs = vec![
            ("AWS_ENDPOINT_URL", "http://10.20.0.10:3900"),
            ("AWS_REGION", "garage"),
            ("AWS_ACCESS_KEY_ID", "GK0123"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret-access-key"),
            ("S3_BUCKET", "serre-lab"),
            ("SSE_C_ALGORITHM", "AES256"),
            ("SSE_C_KEY", key.as_str()),
        ];
        let s = StorageSettings::from_secret_data(&secret_data(&pairs)).unwrap();
        assert_eq!(s.bucket, "serre-lab");
        assert_eq!(s.endpoint, "http://10.20.0.10:3900");
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret-access-key"), "{shown}");
        assert!(!shown.contains(&key), "{shown}");
        assert!(shown.contains("GK0123") && shown.contains("<redacted>"));
        assert!(s.store().is_ok());

        let err = |pairs: &[(&str, &str)]| {
            let e = StorageSettings::from_secret_data(&secret_data(pairs)).unwrap_err();
            let m = e.to_string();
            assert!(
                !m.contains("very-secret-access-key") && !m.contains(&key),
                "{m}"
            );
            m
        };
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        pairs[6] = ("SSE_C_KEY", short.as_str());
        assert!(err(&pairs).contains("32-byte"));
        pairs[6] = ("SSE_C_KEY", "not base64!");
        assert!(err(&pairs).contains("base64"));
        pairs[6] = ("SSE_C_KEY", key.as_str());
        pairs[5] = ("SSE_C_ALGORITHM", "aws:kms");
        assert!(err(&pairs).contains("SSE_C_ALGORITHM"));
        pairs[5] = ("SSE_C_ALGORITHM", "AES256");
        pairs.remove(4);
        assert!(err(&pairs).contains("S3_BUCKET is missing"));
    }

    #[tokio::test]
    async fn results_list_what_the_run_wrote_and_open_one_object() {
        let store = InMemory::new();
        for (k, v) in [
            ("runs/run-a/metrics.json", "{}"),
            ("runs/run-a/preds/part-0.csv", "a,b\n1,2\n"),
            ("runs/run-ab/other.json", "{}"),
            ("runs/run-b/x.txt", "x"),
        ] {
            store
                .put(
                    &ObjectPath::from(k),
                    PutPayload::from(v.as_bytes().to_vec()),
                )
                .await
                .unwrap();
        }
        let listing = list_results(&store, "run-a").await.unwrap();
        let paths: Vec<&str> = listing.objects.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, ["metrics.json", "preds/part-0.csv"]);
        assert_eq!(listing.objects[1].size, 8);
        assert_eq!(listing.prefix, "runs/run-a/");
        assert!(!listing.truncated);
        let json = serde_json::to_value(&listing.objects[0]).unwrap();
        for k in ["path", "size", "lastModified", "etag"] {
            assert!(json.get(k).is_some(), "{k} in {json}");
        }
        assert!(
            list_results(&store, "run-c")
                .await
                .unwrap()
                .objects
                .is_empty()
        );

        let obj = open_result(&store, "run-a", "preds/part-0.csv")
            .await
            .unwrap();
        assert_eq!(obj.size, 8);
        let bytes: Vec<Bytes> = obj.body.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), b"a,b\n1,2\n");
        assert!(matches!(
            open_result(&store, "run-a", "missing.json").await,
            Err(OutputsError::NoSuchResult(_))
        ));
    }

    #[tokio::test]
    async fn a_result_is_written_under_its_runs_prefix_only_whole_and_bounded() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let chunks = |parts: Vec<Vec<u8>>| {
            futures::stream::iter(
                parts
                    .into_iter()
                    .map(|p| Ok::<_, io::Error>(Bytes::from(p))),
            )
        };
        let written = write_result(
            store.clone(),
            "run-a",
            "out/results.json",
            chunks(vec![b"{\"a\":".to_vec(), b"1}".to_vec()]),
            1024,
        )
        .await
        .unwrap();
        assert_eq!(
            (written.path.as_str(), written.size),
            ("out/results.json", 7)
        );
        let got = store
            .get(&ObjectPath::from("runs/run-a/out/results.json"))
            .await
            .unwrap();
        assert_eq!(got.bytes().await.unwrap().as_ref(), b"{\"a\":1}");

        // Larger than a part: a multipart upload, read back whole.
        let big: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 1 << 20]).collect();
        let written = write_result(store.clone(), "run-a", "big.bin", chunks(big), 64 << 20)
            .await
            .unwrap();
        assert_eq!(written.size, 12 << 20);
        let listing = list_results(store.as_ref(), "run-a").await.unwrap();
        let paths: Vec<&str> = listing.objects.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, ["big.bin", "out/results.json"]);

        // Over the limit, or a body that breaks off: an error, and nothing under the name.
        let over = write_result(
            store.clone(),
            "run-a",
            "over.bin",
            chunks((0..8).map(|_| vec![0u8; 1 << 20]).collect()),
            6 << 20,
        )
        .await;
        assert!(matches!(over, Err(OutputsError::TooLarge { limit }) if limit == 6 << 20));
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from(vec![1u8; 6 << 20])),
            Err(io::Error::other("connection reset")),
        ]);
        let broken = write_result(store.clone(), "run-a", "broken.bin", broken, 64 << 20).await;
        assert!(matches!(broken, Err(OutputsError::Body(m)) if m.contains("reset")));
        let listing = list_results(store.as_ref(), "run-a").await.unwrap();
        assert_eq!(listing.objects.len(), 2, "{:?}", listing.objects);
        assert!(
            list_results(store.as_ref(), "run-b")
                .await
                .unwrap()
                .objects
                .is_empty()
        );
    }
}
