//! A run's logs: the query, the pod and container to read, and the byte bound of the body.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{AsyncBufRead, AsyncBufReadExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};
use serre_resources::LABEL_RUN;

use crate::cluster::ClusterError;
use crate::sandboxes::FieldIssue;
use crate::store::RunRow;

use super::OutputsError;

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
    if crate::runs::is_final(&run.phase) {
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

#[cfg(test)]
mod tests;
