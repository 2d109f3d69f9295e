//! What a run leaves behind, read through the gateway: its logs (the Kubernetes pods/log
//! API of its pod, bounded) and its results (the objects it wrote to the sandbox bucket
//! under `runs/<run>/`, read with the sandbox's S3 key and SSE-C key from the Secret
//! `sandbox-storage` of its namespace).
//!
//! The pure parts — query parsing, result paths, content types, the byte bound of a log
//! stream, the S3 settings read from a Secret — are plain functions tested below; the
//! cluster and bucket calls are thin around them.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{AsyncBufRead, AsyncBufReadExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, Secret};
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore};
use serde::Serialize;
use serre_resources::LABEL_RUN;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::cluster::ClusterError;
use crate::sandboxes::FieldIssue;
use crate::store::RunRow;

/// The Secret of a sandbox namespace holding its bucket's settings (written by the operator
/// when object storage is on).
pub const STORAGE_SECRET: &str = "sandbox-storage";
/// Container of the trial itself.
pub const TRIAL_CONTAINER: &str = "trial";
/// Init container fetching the granted views (only in runs with grants).
pub const FETCH_CONTAINER: &str = "fetch-grants";
pub const DEFAULT_LIMIT_BYTES: u64 = 1 << 20;
pub const MIN_LIMIT_BYTES: u64 = 1 << 10;
pub const MAX_LIMIT_BYTES: u64 = 10 << 20;
pub const MAX_TAIL_LINES: i64 = 100_000;
/// A followed log stops after this long, with a trailing line saying so.
pub const FOLLOW_MAX: Duration = Duration::from_secs(3600);
/// Room kept at the end of a log body for the trailing line that says why it was cut.
const MARKER_ROOM: usize = 160;
/// Extra bytes asked of Kubernetes beyond `limitBytes`: its own limit is approximate
/// ("may return slightly more or slightly less"), and seeing more than the limit is what
/// tells, honestly, that the log was cut.
const KUBE_LIMIT_MARGIN: u64 = 64 << 10;
/// At most this many objects in a results listing (`truncated` says when there are more).
pub const MAX_RESULTS: usize = 10_000;
/// Longest result path accepted (bytes).
pub const MAX_PATH_BYTES: usize = 1024;

/// Why a run's logs or results cannot be served. Mapped to HTTP in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum OutputsError {
    /// No pod yet, or the container has not started: 409 `run_not_started`.
    #[error("{0}")]
    NotStarted(String),
    /// The run is over and its pod is gone (Job deleted): 410 `run_logs_gone`.
    #[error("{0}")]
    Gone(String),
    /// The run's pod has no such container (e.g. `fetch-grants` in a run without grants):
    /// 422 naming `container`.
    #[error("{0}")]
    NoSuchContainer(String),
    /// The sandbox has no object storage (no Secret `sandbox-storage`): 409 `storage_off`.
    #[error("{0}")]
    StorageOff(String),
    /// No such object under the run's prefix: 404.
    #[error("{0}")]
    NoSuchResult(String),
    /// The Secret is there but unusable (a key missing, a bad SSE-C key): 500, the detail
    /// (names of entries, never values) in the log only.
    #[error("the sandbox's storage settings are unusable: {0}")]
    Settings(String),
    /// The bucket failed: 503 `storage_unavailable`, the detail in the log only.
    #[error("the sandbox bucket failed: {0}")]
    Bucket(String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

// ---- Logs: the query --------------------------------------------------------------------

/// `GET …/runs/{id}/logs`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    pub container: String,
    pub tail_lines: Option<i64>,
    pub limit_bytes: u64,
    pub follow: bool,
    pub timestamps: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            container: TRIAL_CONTAINER.to_owned(),
            tail_lines: None,
            limit_bytes: DEFAULT_LIMIT_BYTES,
            follow: false,
            timestamps: false,
        }
    }
}

fn parse_bool(field: &str, v: &str, issues: &mut Vec<FieldIssue>) -> bool {
    match v {
        "true" => true,
        "false" => false,
        _ => {
            issues.push(FieldIssue::new(
                field,
                "boolean",
                format!("{v:?} is not true or false"),
            ));
            false
        }
    }
}

fn parse_range<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    v: &str,
    min: T,
    max: T,
    issues: &mut Vec<FieldIssue>,
) -> Option<T> {
    match v.parse::<T>() {
        Ok(n) if n >= min && n <= max => Some(n),
        _ => {
            issues.push(FieldIssue::new(
                field,
                "range",
                format!("{v:?} is not a whole number between {min} and {max}"),
            ));
            None
        }
    }
}

/// Parse the query's pairs: every problem names its parameter (unknown and repeated
/// parameters too).
pub fn parse_log_query(pairs: &[(String, String)]) -> Result<LogOptions, Vec<FieldIssue>> {
    let mut opts = LogOptions::default();
    let mut issues = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in pairs {
        if !seen.insert(k.as_str()) {
            issues.push(FieldIssue::new(k, "unique", "is given more than once"));
            continue;
        }
        match k.as_str() {
            "container" => {
                if v == TRIAL_CONTAINER || v == FETCH_CONTAINER {
                    opts.container.clone_from(v);
                } else {
                    issues.push(FieldIssue::new(
                        k,
                        "one_of",
                        format!("{v:?} is not {TRIAL_CONTAINER} or {FETCH_CONTAINER}"),
                    ));
                }
            }
            "tailLines" => opts.tail_lines = parse_range(k, v, 1, MAX_TAIL_LINES, &mut issues),
            "limitBytes" => {
                opts.limit_bytes =
                    parse_range(k, v, MIN_LIMIT_BYTES, MAX_LIMIT_BYTES, &mut issues)
                        .unwrap_or(DEFAULT_LIMIT_BYTES);
            }
            "follow" => opts.follow = parse_bool(k, v, &mut issues),
            "timestamps" => opts.timestamps = parse_bool(k, v, &mut issues),
            _ => issues.push(FieldIssue::new(
                k,
                "unknown_parameter",
                "is not a parameter of this route (container, tailLines, limitBytes, follow, timestamps)",
            )),
        }
    }
    if issues.is_empty() {
        Ok(opts)
    } else {
        Err(issues)
    }
}

// ---- Logs: the pod ----------------------------------------------------------------------

/// The run's pod to read: the newest of those labelled with the run (a Job may have
/// replaced one).
pub fn pick_pod(pods: &[Pod]) -> Option<&Pod> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .max_by_key(|p| p.metadata.creation_timestamp.clone())
        .or_else(|| pods.first())
}

/// Whether `container` of `pod` has logs to read: it must be one of the pod's containers
/// and have started at least once.
pub fn check_container(pod: &Pod, container: &str, run: &str) -> Result<(), OutputsError> {
    let spec = pod.spec.as_ref();
    let declared = spec.is_some_and(|s| {
        s.containers.iter().any(|c| c.name == container)
            || s.init_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
    });
    if !declared {
        let why = if container == FETCH_CONTAINER {
            " (it has no grants to fetch)"
        } else {
            ""
        };
        return Err(OutputsError::NoSuchContainer(format!(
            "run {run:?} has no container {container:?}{why}"
        )));
    }
    let status = pod.status.as_ref();
    let find = |list: Option<&Vec<ContainerStatus>>| {
        list.into_iter()
            .flatten()
            .find(|s| s.name == container)
            .cloned()
    };
    let cs = status.and_then(|s| {
        find(s.container_statuses.as_ref()).or_else(|| find(s.init_container_statuses.as_ref()))
    });
    let started = cs.as_ref().is_some_and(|cs| {
        let state = cs.state.as_ref();
        state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
            || cs
                .last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some())
            || cs.restart_count > 0
    });
    if started {
        return Ok(());
    }
    let reason = cs
        .as_ref()
        .and_then(|cs| cs.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .or_else(|| status.and_then(|s| s.phase.clone()))
        .unwrap_or_else(|| "Pending".into());
    Err(OutputsError::NotStarted(format!(
        "the container {container:?} of run {run:?} has not started yet ({reason})"
    )))
}

/// What to say when the run has no pod: not yet (409), or no longer (410).
pub fn no_pod(run: &RunRow) -> OutputsError {
    if super::is_final(&run.phase) {
        OutputsError::Gone(format!(
            "run {:?} is {} and its pod no longer exists (its Job was deleted): its logs are gone",
            run.name, run.phase
        ))
    } else {
        OutputsError::NotStarted(format!("the run has no pod yet: it is {}", run.phase))
    }
}

/// A bounded log body.
pub type LogBody = BoxStream<'static, io::Result<Bytes>>;

/// Open the run's log stream: find its pod, check the container, ask Kubernetes (with a
/// little more than the limit), and bound what comes back to `limit_bytes`.
pub async fn logs(
    client: &Client,
    run: &RunRow,
    opts: &LogOptions,
) -> Result<(String, LogBody), OutputsError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &run.namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("{LABEL_RUN}={}", run.name)))
        .await
        .map_err(ClusterError::from_kube)?;
    let pod = pick_pod(&list.items).ok_or_else(|| no_pod(run))?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    check_container(pod, &opts.container, &run.name)?;
    let params = LogParams {
        container: Some(opts.container.clone()),
        follow: opts.follow,
        limit_bytes: i64::try_from(opts.limit_bytes + KUBE_LIMIT_MARGIN).ok(),
        tail_lines: opts.tail_lines,
        timestamps: opts.timestamps,
        ..LogParams::default()
    };
    let reader = match pods.log_stream(&pod_name, &params).await {
        Ok(r) => r,
        // The pod went away between the list and the read.
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(no_pod(run)),
        // "container … is waiting to start", and the like.
        Err(kube::Error::Api(s)) if s.code == 400 => {
            return Err(OutputsError::NotStarted(s.message));
        }
        Err(e) => return Err(ClusterError::from_kube(e).into()),
    };
    let deadline = opts.follow.then_some(FOLLOW_MAX);
    Ok((
        pod_name,
        bounded(chunks(Box::pin(reader)), opts.limit_bytes, deadline).boxed(),
    ))
}

/// The chunks of an `AsyncBufRead`, as they arrive.
fn chunks<R>(reader: Pin<Box<R>>) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    R: AsyncBufRead + Send + 'static + ?Sized,
{
    futures::stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        let chunk = match reader.fill_buf().await {
            Ok([]) => return None,
            Ok(buf) => Bytes::copy_from_slice(buf),
            Err(e) => return Some((Err(e), None)),
        };
        reader.as_mut().consume(chunk.len());
        Some((Ok(chunk), Some(reader)))
    })
}

/// Why a log body was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    Limit(u64),
    Follow(Duration),
    Broken,
}

impl Cut {
    fn marker(self) -> String {
        match self {
            Cut::Limit(n) => format!(
                "\n[serre: log truncated at limitBytes={n}; ask with tailLines or a larger limitBytes]\n"
            ),
            Cut::Follow(d) => format!(
                "\n[serre: stopped following after {} s; ask again to go on]\n",
                d.as_secs()
            ),
            Cut::Broken => "\n[serre: the log stream from Kubernetes broke off here]\n".into(),
        }
    }
}

struct Bound<S> {
    inner: Pin<Box<S>>,
    limit: usize,
    /// Content bytes already sent.
    sent: usize,
    /// Content bytes received but held back: they fit the limit only if no marker has to
    /// follow them.
    held: Vec<u8>,
    deadline: Option<tokio::time::Instant>,
    follow_for: Duration,
    done: bool,
}

impl<S: Stream<Item = io::Result<Bytes>>> Bound<S> {
    /// What may still go out before the trailing line, then the line; ends the body.
    fn cut(&mut self, why: Cut) -> Bytes {
        self.done = true;
        let marker = why.marker();
        let room = self
            .limit
            .saturating_sub(self.sent)
            .saturating_sub(marker.len());
        let mut out = Vec::with_capacity(room.min(self.held.len()) + marker.len());
        out.extend_from_slice(&self.held[..room.min(self.held.len())]);
        out.extend_from_slice(marker.as_bytes());
        self.held.clear();
        Bytes::from(out)
    }

    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            if self.done {
                return None;
            }
            let item = match self.deadline {
                Some(at) => match tokio::time::timeout_at(at, self.inner.next()).await {
                    Ok(item) => item,
                    Err(_) => return Some(Ok(self.cut(Cut::Follow(self.follow_for)))),
                },
                None => self.inner.next().await,
            };
            match item {
                None => {
                    self.done = true;
                    if self.held.is_empty() {
                        return None;
                    }
                    return Some(Ok(Bytes::from(std::mem::take(&mut self.held))));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "a run's log stream broke off");
                    return Some(Ok(self.cut(Cut::Broken)));
                }
                Some(Ok(chunk)) => {
                    self.held.extend_from_slice(&chunk);
                    if self.sent + self.held.len() > self.limit {
                        return Some(Ok(self.cut(Cut::Limit(self.limit as u64))));
                    }
                    // Send what lies before the room kept for a trailing line.
                    let safe = self.limit.saturating_sub(MARKER_ROOM);
                    let n = safe.saturating_sub(self.sent).min(self.held.len());
                    if n > 0 {
                        self.sent += n;
                        let out: Vec<u8> = self.held.drain(..n).collect();
                        return Some(Ok(Bytes::from(out)));
                    }
                }
            }
        }
    }
}

/// Bound a log body to `limit` bytes in all: when the log is longer, it ends with a
/// trailing line saying it was cut (within the limit); likewise when following stops
/// after `follow_for`, or when the stream from Kubernetes breaks. `limit` must exceed
/// `MARKER_ROOM` (`MIN_LIMIT_BYTES` does).
pub fn bounded<S>(
    inner: S,
    limit: u64,
    follow_for: Option<Duration>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    let state = Bound {
        inner: Box::pin(inner),
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        sent: 0,
        held: Vec::new(),
        deadline: follow_for.map(|d| tokio::time::Instant::now() + d),
        follow_for: follow_for.unwrap_or_default(),
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        let item = s.next_chunk().await?;
        Some((item, s))
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, PodSpec, PodStatus,
    };
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    fn q(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn fields(r: Result<LogOptions, Vec<FieldIssue>>) -> Vec<(String, String)> {
        r.unwrap_err()
            .into_iter()
            .map(|i| (i.field, i.rule))
            .collect()
    }

    #[test]
    fn the_log_query_has_defaults_and_bounds_naming_each_parameter() {
        assert_eq!(parse_log_query(&[]).unwrap(), LogOptions::default());
        let o = parse_log_query(&q(&[
            ("container", "fetch-grants"),
            ("tailLines", "100000"),
            ("limitBytes", "10485760"),
            ("follow", "true"),
            ("timestamps", "true"),
        ]))
        .unwrap();
        assert_eq!(o.container, "fetch-grants");
        assert_eq!(o.tail_lines, Some(100_000));
        assert_eq!(o.limit_bytes, MAX_LIMIT_BYTES);
        assert!(o.follow && o.timestamps);
        let bad = fields(parse_log_query(&q(&[
            ("container", "sidecar"),
            ("tailLines", "0"),
            ("limitBytes", "10485761"),
            ("follow", "yes"),
            ("timestamps", "1"),
            ("since", "5m"),
        ])));
        for (f, rule) in [
            ("container", "one_of"),
            ("tailLines", "range"),
            ("limitBytes", "range"),
            ("follow", "boolean"),
            ("timestamps", "boolean"),
            ("since", "unknown_parameter"),
        ] {
            assert!(
                bad.contains(&(f.to_owned(), rule.to_owned())),
                "{f}/{rule} in {bad:?}"
            );
        }
        assert_eq!(
            fields(parse_log_query(&q(&[("tailLines", "-3")]))),
            [("tailLines".to_owned(), "range".to_owned())]
        );
        assert_eq!(
            fields(parse_log_query(&q(&[("tailLines", "100001")]))),
            [("tailLines".to_owned(), "range".to_owned())]
        );
        assert_eq!(
            fields(parse_log_query(&q(&[("limitBytes", "1023")]))),
            [("limitBytes".to_owned(), "range".to_owned())]
        );
        assert_eq!(
            fields(parse_log_query(&q(&[
                ("follow", "true"),
                ("follow", "true")
            ]))),
            [("follow".to_owned(), "unique".to_owned())]
        );
    }

    async fn collect(chunks: &[&[u8]], limit: u64) -> Vec<u8> {
        let items: Vec<io::Result<Bytes>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let out: Vec<Bytes> = bounded(futures::stream::iter(items), limit, None)
            .try_collect()
            .await
            .unwrap();
        out.concat()
    }

    #[tokio::test]
    async fn a_log_body_never_exceeds_its_limit_and_says_when_it_was_cut() {
        let limit = 1024u64;
        let line = vec![b'a'; 100];
        // Shorter than the limit: everything, nothing added.
        let body = collect(&[&line, &line], limit).await;
        assert_eq!(body.len(), 200);
        // Exactly the limit, in odd chunks: everything, nothing added.
        let full = vec![b'x'; 1024];
        let body = collect(&[&full[..1000], &full[1000..], b""], limit).await;
        assert_eq!(body, full);
        // One byte more: cut, with the trailing line, within the limit.
        let over = vec![b'y'; 1025];
        let body = collect(&[&over[..7], &over[7..]], limit).await;
        assert!(body.len() <= 1024, "{}", body.len());
        let text = String::from_utf8(body).unwrap();
        assert!(text.ends_with(
            "[serre: log truncated at limitBytes=1024; ask with tailLines or a larger limitBytes]\n"
        ));
        assert!(text.starts_with(&"y".repeat(1024 - MARKER_ROOM)));
        // Far more, in many chunks: the same bound, and the stream stops reading.
        let chunks: Vec<&[u8]> = std::iter::repeat_n(&line[..], 1000).collect();
        let body = collect(&chunks, limit).await;
        assert!(body.len() <= 1024);
        assert!(String::from_utf8(body).unwrap().contains("truncated"));
        for cut in [
            Cut::Limit(MAX_LIMIT_BYTES),
            Cut::Follow(FOLLOW_MAX),
            Cut::Broken,
        ] {
            assert!(cut.marker().len() <= MARKER_ROOM);
        }
        // A broken stream ends with a line saying so.
        let items = vec![Ok(Bytes::from_static(b"hello")), Err(io::Error::other("x"))];
        let out: Vec<Bytes> = bounded(futures::stream::iter(items), limit, None)
            .try_collect()
            .await
            .unwrap();
        let text = String::from_utf8(out.concat()).unwrap();
        assert!(text.starts_with("hello\n[serre: the log stream"), "{text}");
    }

    #[tokio::test]
    async fn following_stops_after_its_time_with_a_line_saying_so() {
        let first = futures::stream::iter(vec![Ok(Bytes::from_static(b"line 1\n"))]);
        let stream = first.chain(futures::stream::pending());
        let out: Vec<Bytes> = bounded(stream, 4096, Some(Duration::from_millis(30)))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(out.concat()).unwrap(),
            "line 1\n\n[serre: stopped following after 0 s; ask again to go on]\n"
        );
    }

    fn pod(name: &str, created: i64, init: bool, trial: Option<ContainerState>) -> Pod {
        let c = |n: &str| Container {
            name: n.into(),
            ..Default::default()
        };
        Pod {
            metadata: kube::core::ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(created).unwrap(),
                )),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![c("trial")],
                init_containers: init.then(|| vec![c("fetch-grants")]),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                container_statuses: trial.map(|state| {
                    vec![ContainerStatus {
                        name: "trial".into(),
                        state: Some(state),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn run(phase: &str) -> RunRow {
        RunRow {
            name: "run-0123456789ab".into(),
            namespace: "serre-lab".into(),
            sandbox: "lab".into(),
            tenant: "est".into(),
            solution: None,
            kind: "inference".into(),
            requested_by: "vendor-a".into(),
            spec_json: "{}".into(),
            created_at: String::new(),
            phase: phase.into(),
            started_at: None,
            finished_at: None,
            exit_reason: None,
            summary_json: None,
            closed_at: None,
            quality_metric: None,
            quality_value: None,
        }
    }

    #[test]
    fn the_newest_pod_is_read_and_its_container_must_have_started() {
        let running = ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        };
        let waiting = ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("PodInitializing".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pods = vec![
            pod("old", 10, false, Some(running.clone())),
            pod("new", 20, true, Some(waiting)),
        ];
        let p = pick_pod(&pods).unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("new"));
        match check_container(p, "trial", "run-x") {
            Err(OutputsError::NotStarted(m)) => assert!(m.contains("PodInitializing"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(check_container(&pods[0], "trial", "run-x").is_ok());
        match check_container(&pods[0], "fetch-grants", "run-x") {
            Err(OutputsError::NoSuchContainer(m)) => assert!(m.contains("no grants"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(pick_pod(&[]).is_none());
        assert!(
            matches!(no_pod(&run("Pending")), OutputsError::NotStarted(m)
            if m == "the run has no pod yet: it is Pending")
        );
        assert!(matches!(no_pod(&run("Cancelled")), OutputsError::Gone(m)
            if m.contains("Cancelled") && m.contains("gone")));
    }

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
}
