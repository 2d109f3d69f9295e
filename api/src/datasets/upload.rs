//! Receiving an upload: the request body is streamed to a private temporary file, never
//! held in memory, counting bytes against the limit and hashing as it goes; then the data
//! engine turns it into normalised Parquet on a blocking thread.

use std::path::Path;

use axum::body::Body;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::data::{self, CsvOptions, DataError, IngestLimits, IngestReport};

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

/// Parse `input` as declared and write normalised Parquet to `output` (blocking thread).
pub async fn ingest(
    input: &Path,
    output: &Path,
    format: Format,
    limits: IngestLimits,
) -> Result<IngestReport, UploadError> {
    let (input, output) = (input.to_owned(), output.to_owned());
    tokio::task::spawn_blocking(move || -> Result<IngestReport, UploadError> {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&output)?);
        let report = match format {
            Format::Csv(options) => {
                let reader = std::io::BufReader::new(std::fs::File::open(&input)?);
                data::ingest_csv(reader, &options, &mut out, &limits)?
            }
            Format::Parquet => {
                let file = std::fs::File::open(&input)?;
                data::ingest_parquet(file, &mut out, &limits)?
            }
        };
        out.flush()?;
        Ok(report)
    })
    .await
    .map_err(|e| UploadError::Task(e.to_string()))?
}
