//! Serving a grant's materialised view: the whole Parquet file or one byte range of it
//! (206), both streamed and decrypted one segment at a time, or an Arrow IPC stream.
//! Every read is audited with the grant, the principal, the bytes and (for whole reads)
//! the rows.

use std::ops::Range;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::json;

use super::AppState;
use crate::audit::{Draft, Outcome};
use crate::blobs::{BlobError, BlobRef};
use crate::error::ApiError;
use crate::store::GrantRow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeFormat {
    Parquet,
    ArrowStream,
}

/// A single `Range: bytes=…` over a body of `len` bytes: `Ok(None)` without a Range header,
/// an error for what cannot be satisfied. Several ranges are not supported (the whole
/// body is served instead, as RFC 9110 allows).
pub fn parse_range(headers: &HeaderMap, len: u64) -> Result<Option<Range<u64>>, ApiError> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let unsatisfiable =
        |why: &str| ApiError::RangeNotSatisfiable(format!("{why} (the view has {len} bytes)"));
    let text = value
        .to_str()
        .map_err(|_| unsatisfiable("unreadable Range header"))?;
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return Err(unsatisfiable("only byte ranges are served"));
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec
        .split_once('-')
        .ok_or_else(|| unsatisfiable("malformed range"))?;
    let num = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| unsatisfiable("malformed range"))
    };
    let range = match (start.trim().is_empty(), end.trim().is_empty()) {
        (false, true) => num(start)?..len,
        (false, false) => num(start)?..num(end)?.saturating_add(1).min(len),
        (true, false) => len.saturating_sub(num(end)?)..len,
        (true, true) => return Err(unsatisfiable("malformed range")),
    };
    if range.start >= len || range.start >= range.end {
        return Err(unsatisfiable("the range starts past the end"));
    }
    Ok(Some(range))
}

fn blob(g: &GrantRow) -> BlobRef {
    BlobRef {
        key: g.view_key.clone(),
        wrapped_key: g.view_wrapped_key.clone(),
        plain_size: u64::try_from(g.view_size).unwrap_or(0),
    }
}

/// Record one data access (whoever the principal: OIDC caller or sharing token).
pub async fn audit_access(
    app: &AppState,
    g: &GrantRow,
    principal: &str,
    request_id: &str,
    via: &str,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let mut draft = Draft::new(
        principal,
        "grant.data.read",
        format!("Grant::{:?}", g.id),
        Outcome::Allow,
    );
    draft.tenant = Some(g.tenant.clone());
    draft.request_id = request_id.to_owned();
    let mut details = details;
    if let Some(map) = details.as_object_mut() {
        map.insert("via".into(), json!(via));
        map.insert("dataset".into(), json!(g.dataset_id));
        map.insert("version".into(), json!(g.version));
    }
    draft.details = details;
    app.audit.append(vec![draft]).await?;
    Ok(())
}

/// Answer with the grant's view in `format`, honouring a byte Range for Parquet.
pub async fn serve_view(
    app: &AppState,
    g: &GrantRow,
    principal: &str,
    request_id: &str,
    format: ServeFormat,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let blob = blob(g);
    let len = blob.plain_size;
    if format == ServeFormat::ArrowStream {
        audit_access(
            app,
            g,
            principal,
            request_id,
            "arrow",
            json!({ "rows": g.view_rows }),
        )
        .await?;
        return arrow_stream(app, &blob).await;
    }
    let etag = HeaderValue::from_str(&format!("\"{}\"", g.view_sha256)).ok();
    let mut response = match parse_range(headers, len)? {
        Some(range) => {
            // Streamed: one segment in memory whatever the range (`bytes=0-` is the whole
            // view). Opened first, so a read that cannot start is not audited.
            let stream = app
                .data
                .blobs
                .get_range_stream(&blob, range.clone())
                .await?;
            let n = range.end - range.start;
            audit_access(
                app,
                g,
                principal,
                request_id,
                "parquet-range",
                json!({ "bytes": n, "range": [range.start, range.end] }),
            )
            .await?;
            let mut r = (StatusCode::PARTIAL_CONTENT, body(stream, &blob.key)).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{len}", range.start, range.end - 1))
            {
                h.insert(header::CONTENT_RANGE, v);
            }
            r
        }
        None => {
            audit_access(
                app,
                g,
                principal,
                request_id,
                "parquet",
                json!({ "bytes": len, "rows": g.view_rows }),
            )
            .await?;
            let stream = app.data.blobs.get_stream(&blob).await?;
            let mut r = body(stream, &blob.key).into_response();
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.apache.parquet"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Some(etag) = etag {
        h.insert(header::ETAG, etag);
    }
    Ok(response)
}

/// A response body from a decrypting stream. An error past the first byte can only cut
/// the body short (the client sees fewer bytes than Content-Length); it is logged here.
fn body(stream: BoxStream<'static, Result<Bytes, BlobError>>, key: &str) -> Body {
    let key = key.to_owned();
    Body::from_stream(stream.map(move |chunk| {
        chunk.map_err(|e| {
            tracing::warn!(key, category = e.category(), error = %e, "view body cut short");
            std::io::Error::other(e)
        })
    }))
}

/// Decode the Parquet view on a blocking thread and stream it as Arrow IPC.
async fn arrow_stream(app: &AppState, blob: &BlobRef) -> Result<Response, ApiError> {
    let reader = app.data.blobs.open_reader(blob).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let result = write_ipc(
            reader,
            ChannelWriter {
                tx: tx.clone(),
                buf: Vec::new(),
            },
        );
        if let Err(e) = result {
            tracing::warn!(error = %e, "Arrow stream of a view failed");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let stream = tokio_stream_from(rx);
    let mut r = Body::from_stream(stream).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.apache.arrow.stream"),
    );
    Ok(r)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn write_ipc(reader: crate::blobs::DecryptingReader, out: ChannelWriter) -> Result<(), String> {
    use arrow_array::RecordBatchReader;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let batches = ParquetRecordBatchReaderBuilder::try_new(reader)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let schema = batches.schema();
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(out, &schema).map_err(|e| e.to_string())?;
    for batch in batches {
        let batch = batch.map_err(|e| e.to_string())?;
        writer.write(&batch).map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())?;
    let mut out = writer.into_inner().map_err(|e| e.to_string())?;
    std::io::Write::flush(&mut out).map_err(|e| e.to_string())
}

/// A `Write` that sends 64 KiB chunks down a channel (blocking: backpressure from the
/// HTTP client reaches the decoder).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}
