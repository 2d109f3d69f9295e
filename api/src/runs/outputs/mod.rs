//! What a run leaves behind, read through the gateway: its logs ([`logs`]: the Kubernetes
//! pods/log API of its pod, bounded) and its results ([`results`]: the objects under
//! `runs/<run>/` of the sandbox bucket, read with the sandbox's S3 key and SSE-C key from
//! the Secret `sandbox-storage` of its namespace). The run writes them through the gateway
//! too ([`results::write_result`]): its pod holds no storage credential.
//!
//! The pure parts — query parsing, result paths, content types, the byte bound of a log
//! stream, the S3 settings read from a Secret — are plain functions with unit tests; the
//! cluster and bucket calls are thin around them.

pub mod logs;
pub mod results;

pub use logs::{LogOptions, logs, parse_log_query};
pub use results::{
    ResultListing, WrittenResult, bucket, content_disposition, content_type, list_results,
    open_result, validate_path, write_result,
};

use crate::cluster::ClusterError;

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
    /// A result upload over `--max-run-result-bytes`: 413, nothing kept.
    #[error("the result is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The upload's body broke off: 400 `bad_body`, nothing kept.
    #[error("the upload was interrupted: {0}")]
    Body(String),
    /// The bucket failed: 503 `storage_unavailable`, the detail in the log only.
    #[error("the sandbox bucket failed: {0}")]
    Bucket(String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}
