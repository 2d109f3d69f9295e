//! Encrypted blob store for dataset files: a local directory in embedded and dev mode,
//! an S3 bucket (Garage) in production, both through `object_store`.
//!
//! Every blob is encrypted client-side before it leaves the process, in the operator's
//! streaming format (`serre_crypto::stream`: 64 KiB AES-256-GCM segments),
//! with its own fresh [`DataKey`]. The data key is wrapped by the [`KekRing`] with the
//! context `serre/blob/<key>` and returned to the caller as
//! [`StoredBlob::wrapped_key`] to be recorded next to the blob's metadata; the store
//! keeps no index of its own. Reads need that wrapped key and the plaintext size back
//! ([`BlobRef`]): the size is compared with the stored object's, so an object
//! truncated to another possible length is refused even by reads that never reach its
//! end.
//!
//! - [`BlobStore::put_file`]: encrypts on a blocking thread while the upload runs
//!   (bounded memory: a single PUT below [`PART_SIZE`], multipart above).
//! - [`BlobStore::get_range_stream`]: a plaintext range as a stream of verified
//!   segments; fetches only the segments that cover the range (and the header, the
//!   first time a blob is read: its opener is then cached). One segment in memory.
//! - [`BlobStore::get_range`]: the same, collected into one buffer (small reads).
//! - [`BlobStore::get_stream`]: the whole plaintext, decrypted as it streams.
//! - [`BlobStore::open_reader`]: a [`DecryptingReader`] for the parquet crate.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::ClientOptions;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use serre_crypto::stream::HEADER_LEN;
use serre_crypto::{DataKey, EncryptedLayout, KekRing, KeyWrapper, SegmentOpener, WrappedKey};

mod error;
mod public;
mod range;
mod reader;
mod upload;

pub use error::BlobError;
pub use reader::{DecryptingReader, PlainCursor};

/// Size of a multipart upload part, and the size below which a blob goes up in one PUT.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Longest accepted key, in bytes (S3's limit).
const MAX_KEY_LEN: usize = 1024;
/// Blobs whose segment opener (derived key and layout) is kept for range reads.
const CACHED_OPENERS: usize = 64;

/// Where blobs live.
#[derive(Clone)]
pub enum BlobBackend {
    /// A local directory (created if missing); object keys become relative paths.
    Local { dir: PathBuf },
    /// One S3 bucket (Garage): path-style requests, plain HTTP allowed.
    S3 {
        endpoint: String,
        bucket: String,
        region: String,
        access_key_id: String,
        secret_access_key: String,
    },
}

impl fmt::Debug for BlobBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobBackend::Local { dir } => f.debug_struct("Local").field("dir", dir).finish(),
            BlobBackend::S3 {
                endpoint,
                bucket,
                region,
                access_key_id,
                ..
            } => f
                .debug_struct("S3")
                .field("endpoint", endpoint)
                .field("bucket", bucket)
                .field("region", region)
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"<redacted>")
                .finish(),
        }
    }
}

/// What [`BlobStore::put_file`] stored; record all of it with the dataset version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlob {
    pub key: String,
    /// Compact form of the blob's wrapped data key (`serre-wk1:…`); not secret.
    pub wrapped_key: String,
    pub plain_size: u64,
    /// Encrypted size in the store (header and tags included).
    pub stored_size: u64,
    /// Hex SHA-256 of the plaintext.
    pub sha256: String,
}

impl StoredBlob {
    /// What reads need.
    pub fn blob_ref(&self) -> BlobRef {
        BlobRef {
            key: self.key.clone(),
            wrapped_key: self.wrapped_key.clone(),
            plain_size: self.plain_size,
        }
    }
}

/// A stored blob as recorded by its owner: enough to read it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub key: String,
    pub wrapped_key: String,
    pub plain_size: u64,
}

impl From<&StoredBlob> for BlobRef {
    fn from(b: &StoredBlob) -> Self {
        b.blob_ref()
    }
}

/// Encrypted blob store. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    /// The same store for the large body reads (object and range streams, downloads).
    /// S3: its connections are not reused. A keep-alive connection turns interactive
    /// (Linux delays its ACKs) after a few request/response exchanges, and a store that
    /// leaves Nagle's algorithm on (Garage 2.5 does) then holds the last short segment
    /// of a response until the delayed ACK fires: ~40 ms on every range read whose end
    /// is not aligned to the store's blocks. A new connection per body read costs a
    /// handshake instead (`docs/benchmarks.md`, *Delta Sharing serving*).
    bodies: Arc<dyn ObjectStore>,
    backend: Backend,
    keks: KekRing,
    /// Openers of recently range-read blobs (most recent last), so repeated range reads
    /// skip the header request. Keyed by key and wrapped key: a blob stored again has
    /// a new data key, so a stale entry is never used for it.
    openers: Mutex<VecDeque<(String, String, Arc<SegmentOpener>)>>,
}

enum Backend {
    Local {
        dir: PathBuf,
        fs: Arc<LocalFileSystem>,
    },
    S3 {
        bucket: String,
    },
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("BlobStore");
        match &self.inner.backend {
            Backend::Local { dir, .. } => d.field("local", dir),
            Backend::S3 { bucket } => d.field("s3_bucket", bucket),
        };
        d.field("kek", &self.inner.keks.key_id()).finish()
    }
}

/// The wrapping context of blob `key`'s data key.
fn wrap_context(key: &str) -> String {
    format!("serre/blob/{key}")
}

/// Check a blob key and turn it into an object path. Keys are relative, `/`-separated
/// names such as `tenants/<tenant>/datasets/<id>/v<n>.parquet`.
pub fn validate_key(key: &str) -> Result<Path, BlobError> {
    let bad = |reason| {
        Err(BlobError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return bad("must be relative (no leading '/')");
    }
    if key.contains("..") {
        return bad("must not contain '..'");
    }
    if key.contains('\\') {
        return bad("must not contain backslashes");
    }
    if key.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    if key.split('/').any(|part| part.is_empty() || part == ".") {
        return bad("empty or '.' path segment");
    }
    Path::parse(key).or_else(|_| bad("not a valid object path"))
}

impl BlobStore {
    pub fn new(backend: BlobBackend, keks: KekRing) -> Result<Self, BlobError> {
        type Stores = (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, Backend);
        let (store, bodies, backend): Stores = match backend {
            BlobBackend::Local { dir } => {
                std::fs::create_dir_all(&dir).map_err(|source| BlobError::LocalFile {
                    path: dir.clone(),
                    source,
                })?;
                let fs = Arc::new(
                    LocalFileSystem::new_with_prefix(&dir)
                        .map_err(|e| BlobError::Config(format!("{}: {e}", dir.display())))?
                        .with_automatic_cleanup(true),
                );
                (fs.clone(), fs.clone(), Backend::Local { dir, fs })
            }
            BlobBackend::S3 {
                endpoint,
                bucket,
                region,
                access_key_id,
                secret_access_key,
            } => {
                // Client options first: `with_client_options` replaces them all, and
                // `with_allow_http` is one of them.
                let s3 = |options: ClientOptions| {
                    AmazonS3Builder::new()
                        .with_client_options(options)
                        .with_allow_http(true)
                        .with_endpoint(&endpoint)
                        .with_virtual_hosted_style_request(false)
                        .with_region(&region)
                        .with_bucket_name(&bucket)
                        .with_access_key_id(&access_key_id)
                        .with_secret_access_key(&secret_access_key)
                        .build()
                        .map_err(|e| BlobError::Config(e.to_string()))
                };
                let store = s3(ClientOptions::new())?;
                let bodies = s3(ClientOptions::new().with_pool_max_idle_per_host(0))?;
                (Arc::new(store), Arc::new(bodies), Backend::S3 { bucket })
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                bodies,
                backend,
                keks,
                openers: Mutex::new(VecDeque::with_capacity(CACHED_OPENERS)),
            }),
        })
    }

    fn data_key(&self, blob: &BlobRef) -> Result<DataKey, BlobError> {
        let wrapped: WrappedKey = blob
            .wrapped_key
            .parse()
            .map_err(|e| BlobError::from_crypto(&blob.key, e))?;
        self.inner
            .keks
            .unwrap_key(&wrapped, &wrap_context(&blob.key))
            .map_err(|e| BlobError::from_crypto(&blob.key, e))
    }

    /// Encrypt the local plaintext file with a fresh data key and store it under `key`
    /// (streamed: at most a few parts in memory). Also computes the SHA-256 of the
    /// plaintext. Replaces any blob already stored under `key`; on error nothing new
    /// is visible under `key`.
    pub async fn put_file(&self, key: &str, plaintext: &FsPath) -> Result<StoredBlob, BlobError> {
        let path = validate_key(key)?;
        let data_key = DataKey::generate().map_err(BlobError::Crypto)?;
        let wrapped = self
            .inner
            .keks
            .wrap_key(&data_key, &wrap_context(key))
            .map_err(BlobError::Crypto)?;
        let (stored_size, plain_size, digest) =
            upload::encrypt_and_upload(self.inner.store.as_ref(), &path, data_key, plaintext)
                .await?;
        tracing::debug!(key, plain_size, stored_size, "blob stored");
        Ok(StoredBlob {
            key: key.to_owned(),
            wrapped_key: wrapped.to_string(),
            plain_size,
            stored_size,
            sha256: hex::encode(digest),
        })
    }

    /// An opener for the stored object's segments (its layout inside), from the cache
    /// or from the object's header; checks the recorded plaintext size.
    async fn opener_for(
        &self,
        blob: &BlobRef,
        path: &Path,
    ) -> Result<Arc<SegmentOpener>, BlobError> {
        let cached = {
            let mut openers = self.inner.openers.lock().expect("opener cache");
            let hit = openers
                .iter()
                .position(|(k, w, _)| *k == blob.key && *w == blob.wrapped_key);
            hit.and_then(|i| openers.remove(i)).inspect(|entry| {
                openers.push_back(entry.clone());
            })
        };
        if let Some((_, _, opener)) = cached {
            let plain_len = opener.layout().plain_len();
            if plain_len != blob.plain_size {
                return Err(size_mismatch(&blob.key, blob.plain_size, plain_len));
            }
            return Ok(opener);
        }
        let data_key = self.data_key(blob)?;
        let head = self
            .inner
            .store
            .get_opts(
                path,
                GetOptions {
                    range: Some(GetRange::Bounded(0..HEADER_LEN as u64)),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BlobError::from_store(&blob.key, e))?;
        let encrypted_len = head.meta.size;
        let header = head
            .bytes()
            .await
            .map_err(|e| BlobError::from_store(&blob.key, e))?;
        let (_, opener) = layout_and_opener(blob, &data_key, &header, encrypted_len)?;
        let opener = Arc::new(opener);
        let mut openers = self.inner.openers.lock().expect("opener cache");
        if openers.len() == CACHED_OPENERS {
            openers.pop_front();
        }
        openers.push_back((blob.key.clone(), blob.wrapped_key.clone(), opener.clone()));
        Ok(opener)
    }

    /// Plaintext bytes `range` of a stored blob, as a stream of verified chunks of at
    /// most one segment each, for HTTP bodies. Fetches the header (the first time a blob
    /// is read: its opener is then cached) and streams only the encrypted segments
    /// covering `range`, decrypting one at a time: memory stays one segment whatever the
    /// length of the range. The stored object's length is checked against the one its
    /// header was read with, and a range that reaches the end opens the final segment as
    /// final, so a truncated object fails. Errors before the first byte are returned;
    /// later ones (a modified segment, a cut connection) end the stream.
    pub async fn get_range_stream(
        &self,
        blob: &BlobRef,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        let path = validate_key(&blob.key)?;
        check_range(blob, &range)?;
        if range.is_empty() {
            return Ok(futures::stream::empty().boxed());
        }
        let opener = self.opener_for(blob, &path).await?;
        let layout = opener.layout();
        let (_, bytes) = layout
            .segments_for(range.clone())
            .map_err(|e| BlobError::from_crypto(&blob.key, e))?;
        let got = self
            .inner
            .bodies
            .get_opts(
                &path,
                GetOptions {
                    range: Some(GetRange::Bounded(bytes.clone())),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BlobError::from_store(&blob.key, e))?;
        // The object may have changed since its header was read (cached opener).
        if got.meta.size != layout.encrypted_len() || got.range != bytes {
            return Err(size_mismatch(
                &blob.key,
                layout.encrypted_len(),
                got.meta.size,
            ));
        }
        range::decrypt_segments(blob.key.clone(), opener, range, got.into_stream())
    }

    /// Plaintext bytes `range` of a stored blob, in one buffer: [`Self::get_range_stream`]
    /// collected (every segment covering the range is verified before it returns). For
    /// small reads; HTTP bodies use the stream.
    pub async fn get_range(&self, blob: &BlobRef, range: Range<u64>) -> Result<Bytes, BlobError> {
        let mut stream = self.get_range_stream(blob, range.clone()).await?;
        let first = match stream.next().await {
            Some(chunk) => chunk?,
            None => return Ok(Bytes::new()),
        };
        if first.len() as u64 == range.end - range.start {
            return Ok(first);
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        out.extend_from_slice(&first);
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }

    /// The whole plaintext as a stream of verified chunks (one segment each), for HTTP
    /// bodies. The stream ends with an error if the object is modified or truncated, or
    /// if its length differs from `blob.plain_size`.
    pub async fn get_stream(
        &self,
        blob: &BlobRef,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        let path = validate_key(&blob.key)?;
        let data_key = self.data_key(blob)?;
        let got = self
            .inner
            .bodies
            .get(&path)
            .await
            .map_err(|e| BlobError::from_store(&blob.key, e))?;
        let state = StreamState {
            body: serre_crypto::decrypt_stream(&data_key, got.into_stream()).boxed(),
            key: blob.key.clone(),
            expected: blob.plain_size,
            seen: 0,
            done: false,
        };
        Ok(futures::stream::unfold(state, StreamState::next).boxed())
    }

    /// A synchronous random-access reader over the plaintext, for the parquet crate.
    /// Local: reads the encrypted file in place. S3: first downloads the encrypted
    /// object to an anonymous private temp file in `$TMPDIR` (unlinked at once, mode
    /// 0600, gone with the last clone; never plaintext on disk). Segments are decrypted
    /// and verified on demand, with a small cache.
    pub async fn open_reader(&self, blob: &BlobRef) -> Result<DecryptingReader, BlobError> {
        let path = validate_key(&blob.key)?;
        let data_key = self.data_key(blob)?;
        let file = match &self.inner.backend {
            Backend::Local { fs, .. } => {
                let fs_path = fs
                    .path_to_filesystem(&path)
                    .map_err(|e| BlobError::from_store(&blob.key, e))?;
                let key = blob.key.clone();
                tokio::task::spawn_blocking(move || {
                    std::fs::File::open(&fs_path).map_err(|source| {
                        if source.kind() == std::io::ErrorKind::NotFound {
                            BlobError::NotFound(key)
                        } else {
                            BlobError::LocalFile {
                                path: fs_path,
                                source,
                            }
                        }
                    })
                })
                .await
                .map_err(|e| BlobError::Task(e.to_string()))??
            }
            Backend::S3 { .. } => {
                upload::download_to_temp(self.inner.bodies.as_ref(), &path, &blob.key).await?
            }
        };
        let key = blob.key.clone();
        let blob = blob.clone();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let encrypted_len = file.metadata()?.len();
            let mut header = [0u8; HEADER_LEN];
            let n = (encrypted_len as usize).min(HEADER_LEN);
            file.read_exact_at(&mut header[..n], 0)?;
            let (layout, opener) =
                layout_and_opener(&blob, &data_key, &header[..n], encrypted_len)?;
            Ok(DecryptingReader::new(key, file, layout, opener))
        })
        .await
        .map_err(|e| BlobError::Task(e.to_string()))?
    }

    /// Delete the blob stored under `key`; a missing blob is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = validate_key(key)?;
        self.inner
            .openers
            .lock()
            .expect("opener cache")
            .retain(|(k, _, _)| k != key);
        match self.inner.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BlobError::Store(e)),
        }
    }

    /// Readiness: the directory exists, or the bucket answers a listing with these
    /// credentials.
    pub async fn check(&self) -> Result<(), BlobError> {
        match &self.inner.backend {
            Backend::Local { dir, .. } => {
                let meta = std::fs::metadata(dir).map_err(|source| BlobError::LocalFile {
                    path: dir.clone(),
                    source,
                })?;
                if !meta.is_dir() {
                    return Err(BlobError::Config(format!(
                        "{} is not a directory",
                        dir.display()
                    )));
                }
                Ok(())
            }
            Backend::S3 { .. } => {
                let probe = Path::from("serre-readiness-probe");
                self.inner
                    .store
                    .list_with_delimiter(Some(&probe))
                    .await
                    .map(|_| ())
                    .map_err(BlobError::Store)
            }
        }
    }
}

/// State of [`BlobStore::get_stream`]: the decrypting stream authenticates the end of
/// the object; this also checks its length against the recorded size, and stops after
/// the first error.
struct StreamState {
    body: BoxStream<'static, serre_crypto::Result<Bytes>>,
    key: String,
    expected: u64,
    seen: u64,
    done: bool,
}

impl StreamState {
    async fn next(mut self) -> Option<(Result<Bytes, BlobError>, Self)> {
        if self.done {
            return None;
        }
        let item = match self.body.next().await {
            Some(Ok(chunk)) => {
                self.seen += chunk.len() as u64;
                if self.seen > self.expected {
                    Err(size_mismatch(&self.key, self.expected, self.seen))
                } else {
                    Ok(chunk)
                }
            }
            Some(Err(e)) => Err(BlobError::from_crypto(&self.key, e)),
            None if self.seen != self.expected => {
                Err(size_mismatch(&self.key, self.expected, self.seen))
            }
            None => return None,
        };
        self.done = item.is_err();
        Some((item, self))
    }
}

fn size_mismatch(key: &str, expected: u64, seen: u64) -> BlobError {
    BlobError::Integrity {
        key: key.to_owned(),
        source: serre_crypto::CryptoError::Truncated(if seen < expected {
            "blob is shorter than its recorded size"
        } else {
            "blob is longer than its recorded size"
        }),
    }
}

fn check_range(blob: &BlobRef, range: &Range<u64>) -> Result<(), BlobError> {
    if range.start > range.end || range.end > blob.plain_size {
        return Err(BlobError::InvalidRange {
            key: blob.key.clone(),
            start: range.start,
            end: range.end,
            len: blob.plain_size,
        });
    }
    Ok(())
}

fn layout_and_opener(
    blob: &BlobRef,
    data_key: &DataKey,
    header: &[u8],
    encrypted_len: u64,
) -> Result<(EncryptedLayout, SegmentOpener), BlobError> {
    let crypto = |e| BlobError::from_crypto(&blob.key, e);
    let layout = EncryptedLayout::new(header, encrypted_len).map_err(crypto)?;
    if layout.plain_len() != blob.plain_size {
        return Err(size_mismatch(
            &blob.key,
            blob.plain_size,
            layout.plain_len(),
        ));
    }
    let opener = SegmentOpener::new(data_key, &layout).map_err(crypto)?;
    Ok((layout, opener))
}

#[cfg(test)]
mod tests;
