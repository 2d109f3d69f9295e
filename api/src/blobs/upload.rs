//! Moving encrypted bytes: encrypt a local file into the store, download an object to
//! a private temp file.

use std::io::{self, Read, Write};
use std::path::Path as FsPath;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serre_crypto::{DataKey, encrypt_to};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{BlobError, PART_SIZE};

/// Parts in flight at once during a multipart upload.
const PARTS_IN_FLIGHT: usize = 4;
/// Ciphertext handed from the encrypting thread to the uploader in chunks this big…
const CHUNK: usize = 1024 * 1024;
/// …with at most this many waiting.
const CHUNKS_QUEUED: usize = 4;

/// Encrypt `plaintext` (a local file) with `key` and store it at `path`. Returns
/// (stored size, plaintext size, plaintext SHA-256). The file is read, hashed and
/// encrypted on a blocking thread; the upload starts as a single PUT and turns into a
/// multipart upload once more than [`PART_SIZE`] bytes are waiting. Nothing is
/// committed unless the whole file was encrypted.
pub(super) async fn encrypt_and_upload(
    store: &dyn ObjectStore,
    path: &Path,
    key: DataKey,
    plaintext: &FsPath,
) -> Result<(u64, u64, [u8; 32]), BlobError> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHUNKS_QUEUED);
    let source = plaintext.to_path_buf();
    let encrypting = tokio::task::spawn_blocking(move || encrypt_file(&source, &key, tx));

    let mut small = Vec::new();
    let mut multipart: Option<WriteMultipart> = None;
    let mut stored = 0u64;
    let mut upload_error = None;
    while let Some(chunk) = rx.recv().await {
        stored += chunk.len() as u64;
        if let Some(writer) = multipart.as_mut() {
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                upload_error = Some(e);
                break;
            }
            writer.put(chunk);
            continue;
        }
        small.extend_from_slice(&chunk);
        if small.len() >= PART_SIZE {
            match store.put_multipart(path).await {
                Ok(upload) => {
                    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                    writer.put(Bytes::from(std::mem::take(&mut small)));
                    multipart = Some(writer);
                }
                Err(e) => {
                    upload_error = Some(e);
                    break;
                }
            }
        }
    }
    // Dropping the receiver stops the encrypting thread if the upload failed.
    drop(rx);
    let encrypted = encrypting
        .await
        .map_err(|e| BlobError::Task(e.to_string()))?;
    let outcome = match (upload_error, encrypted) {
        (Some(e), _) => Err(BlobError::Store(e)),
        (None, result) => result,
    };
    let (plain_size, digest) = match outcome {
        Ok(done) => done,
        Err(e) => {
            if let Some(writer) = multipart {
                let _ = writer.abort().await;
            }
            return Err(e);
        }
    };
    match multipart {
        Some(writer) => {
            writer.finish().await.map_err(BlobError::Store)?;
        }
        None => {
            store
                .put(path, PutPayload::from(small))
                .await
                .map_err(BlobError::Store)?;
        }
    }
    Ok((stored, plain_size, digest))
}

/// Blocking: read, hash and encrypt the file into `tx`.
fn encrypt_file(
    source: &FsPath,
    key: &DataKey,
    tx: mpsc::Sender<Bytes>,
) -> Result<(u64, [u8; 32]), BlobError> {
    let local = |e: io::Error| BlobError::LocalFile {
        path: source.to_path_buf(),
        source: e,
    };
    let file = std::fs::File::open(source).map_err(local)?;
    let mut reader = HashingReader {
        inner: file,
        hasher: Sha256::new(),
        failed: false,
    };
    let writer = ChannelWriter {
        tx,
        buf: Vec::with_capacity(CHUNK),
    };
    let plain = encrypt_to(key, &mut reader, writer).map_err(|e| match e {
        serre_crypto::CryptoError::Io(e) if reader.failed => local(e),
        serre_crypto::CryptoError::Io(e) => BlobError::Io(e),
        other => BlobError::Crypto(other),
    })?;
    Ok((plain, reader.hasher.finalize().into()))
}

/// Hashes what it reads; remembers whether reading failed.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    failed: bool,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                Ok(n)
            }
            Err(e) => {
                self.failed = e.kind() != io::ErrorKind::Interrupted;
                Err(e)
            }
        }
    }
}

/// Sends what is written to it to the uploader in [`CHUNK`]-sized pieces.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    /// Called once by `encrypt_to` at the end: sends the rest.
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Download the (encrypted) object at `path` into an anonymous temp file, readable
/// only by this process and gone when the last handle closes.
pub(super) async fn download_to_temp(
    store: &dyn ObjectStore,
    path: &Path,
    key: &str,
) -> Result<std::fs::File, BlobError> {
    let got = store
        .get(path)
        .await
        .map_err(|e| BlobError::from_store(key, e))?;
    let expected = got.meta.size;
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| BlobError::Task(e.to_string()))??;
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHUNKS_QUEUED);
    let mut writer = file.try_clone()?;
    let writing = tokio::task::spawn_blocking(move || -> io::Result<u64> {
        let mut written = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            writer.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        writer.flush()?;
        Ok(written)
    });
    let mut body = got.into_stream();
    let mut failed = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                if tx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                failed = Some(BlobError::from_store(key, e));
                break;
            }
        }
    }
    drop(tx);
    let written = writing
        .await
        .map_err(|e| BlobError::Task(e.to_string()))??;
    if let Some(e) = failed {
        return Err(e);
    }
    if written != expected {
        return Err(BlobError::Store(object_store::Error::Generic {
            store: "S3",
            source: format!("download of {key:?} ended after {written} of {expected} bytes").into(),
        }));
    }
    Ok(file)
}
