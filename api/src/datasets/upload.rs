//! Receiving an upload: the request body is streamed to a private temporary file, never
//! held in memory, counting bytes against the limit and hashing as it goes; then the data
//! engine turns it into normalised Parquet on a blocking thread, which holds one of the
//! gateway's ingest permits until it ends and stops when the request is abandoned.

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;

use crate::data::{self, Cancel, CsvOptions, DataError, IngestLimits, IngestReport};

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the upload is empty")]
    Empty,
    #[error("the upload was interrupted: {0}")]
    Body(String),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("writing the upload: {0}")]
    Io(#[from] std::io::Error),
    #[error("the ingest task failed: {0}")]
    Task(String),
    /// Every ingest permit stayed taken for the whole queue wait: 503 with `Retry-After`.
    #[error(
        "the gateway is already ingesting {limit} uploads (--max-concurrent-ingests) and none \
         finished within {waited:?}; send the file again in {} seconds",
        .retry_after.as_secs()
    )]
    Busy {
        limit: usize,
        waited: Duration,
        retry_after: Duration,
    },
}

/// The declared format of an upload.
#[derive(Clone, Debug)]
pub enum Format {
    Csv(CsvOptions),
    Parquet,
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::Csv(_) => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// Stream `body` into `path`; returns its size and SHA-256 (hex).
pub async fn receive(body: Body, path: &Path, limit: u64) -> Result<(u64, String), UploadError> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await?;
    let mut stream = body.into_data_stream();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            // The body limit layer and client disconnects both surface here.
            let text = e.to_string();
            if text.contains("length limit") {
                UploadError::TooLarge { limit }
            } else {
                UploadError::Body(text)
            }
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(UploadError::TooLarge { limit });
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    if size == 0 {
        return Err(UploadError::Empty);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Sets its flag when dropped: with the request's future (timeout, client gone), or once
/// the ingest is over (then harmlessly).
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Parse `input` as declared and write normalised Parquet to `output` (a new file) on a
/// blocking thread that holds `permit` until it ends. Dropping the returned future (the
/// request timed out or its client went away) cancels the thread, which stops at its next
/// batch or read; both files are opened here, so the caller's guards remove them whatever
/// the thread is doing.
pub async fn ingest(
    input: &Path,
    output: &Path,
    format: Format,
    limits: IngestLimits,
    permit: OwnedSemaphorePermit,
) -> Result<IngestReport, UploadError> {
    let source = tokio::fs::File::open(input).await?.into_std().await;
    let target = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(output)
        .await?
        .into_std()
        .await;
    let cancel = Cancel::new();
    let _on_drop = CancelOnDrop(cancel.clone());
    tokio::task::spawn_blocking(move || -> Result<IngestReport, UploadError> {
        use std::io::Write;
        let _permit = permit;
        let mut out = std::io::BufWriter::new(target);
        let report = match format {
            Format::Csv(options) => {
                let reader = std::io::BufReader::new(source);
                data::ingest_csv(reader, &options, &mut out, &limits, &cancel)?
            }
            Format::Parquet => data::ingest_parquet(source, &mut out, &limits, &cancel)?,
        };
        out.flush()?;
        Ok(report)
    })
    .await
    .map_err(|e| UploadError::Task(e.to_string()))?
}
