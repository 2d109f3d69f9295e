//! Saving an answer's body as it arrives: to a file (never replacing one without
//! `--force`) or to stdout.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use reqwest::Response;
use tokio::io::AsyncWriteExt;

use crate::client::network;
use crate::error::Failure;

/// Stream `resp`'s body to `out` (created with `mode`) or to stdout; the bytes written.
pub async fn save(
    mut resp: Response,
    out: Option<&Path>,
    force: bool,
    mode: u32,
    what: &str,
) -> Result<u64> {
    let url = resp.url().to_string();
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin> = match out {
        None => Box::new(tokio::io::stdout()),
        Some(path) => {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).mode(mode);
            if force {
                opts.create(true).truncate(true);
            } else {
                opts.create_new(true);
            }
            let f = opts.open(path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::Error::new(Failure::Usage(format!(
                        "{} exists: pass --force to replace it, or --out another file",
                        path.display()
                    )))
                } else {
                    anyhow::Error::new(e).context(format!("create {}", path.display()))
                }
            })?;
            Box::new(tokio::fs::File::from_std(f))
        }
    };
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(|e| network(&url, e))? {
        sink.write_all(&chunk)
            .await
            .with_context(|| format!("write {what}"))?;
        n += chunk.len() as u64;
    }
    sink.flush()
        .await
        .with_context(|| format!("write {what}"))?;
    if let Some(path) = out {
        eprintln!("Wrote {what} to {} ({n} bytes).", path.display());
    }
    Ok(n)
}
