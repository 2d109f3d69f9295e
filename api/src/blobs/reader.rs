//! [`DecryptingReader`]: synchronous random access to a blob's plaintext, for the
//! parquet crate.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use serre_crypto::stream::TAG_LEN;
use serre_crypto::{EncryptedLayout, SegmentOpener};

use super::BlobError;

/// Verified plaintext segments kept per reader (64 KiB each): a Parquet footer, a
/// page header and the page after it usually hit the cache.
const CACHED_SEGMENTS: usize = 16;

/// A synchronous, random-access view of a blob's plaintext over its encrypted bytes in
/// a local file. Each segment is authenticated before any of its bytes are returned;
/// the final segment is opened as final, so a truncated object fails. Cheap to clone
/// (clones share the file and the cache); `Send + Sync + 'static`.
///
/// Implements parquet's [`ChunkReader`]: `ParquetRecordBatchReaderBuilder::try_new(reader)`.
#[derive(Clone)]
pub struct DecryptingReader {
    inner: Arc<Inner>,
}

struct Inner {
    key: String,
    file: std::fs::File,
    layout: EncryptedLayout,
    opener: SegmentOpener,
    /// Most recently used last.
    cache: Mutex<VecDeque<(u64, Bytes)>>,
}

impl fmt::Debug for DecryptingReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptingReader")
            .field("key", &self.inner.key)
            .field("plain_len", &self.inner.layout.plain_len())
            .finish_non_exhaustive()
    }
}

impl DecryptingReader {
    pub(super) fn new(
        key: String,
        file: std::fs::File,
        layout: EncryptedLayout,
        opener: SegmentOpener,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                key,
                file,
                layout,
                opener,
                cache: Mutex::new(VecDeque::with_capacity(CACHED_SEGMENTS)),
            }),
        }
    }

    /// Plaintext length.
    pub fn plain_len(&self) -> u64 {
        self.inner.layout.plain_len()
    }

    /// The verified plaintext of segment `index` (from the cache or the file).
    fn segment(&self, index: u64) -> Result<Bytes, BlobError> {
        {
            let mut cache = self.inner.cache.lock().expect("segment cache");
            if let Some(pos) = cache.iter().position(|(i, _)| *i == index) {
                let entry = cache.remove(pos).expect("present");
                let bytes = entry.1.clone();
                cache.push_back(entry);
                return Ok(bytes);
            }
        }
        // Read and decrypt outside the lock: readers of other segments go on.
        let layout = &self.inner.layout;
        let enc = layout.segment_encrypted_range(index);
        let mut buf = vec![0u8; (enc.end - enc.start) as usize];
        debug_assert!(buf.len() <= layout.segment_size() as usize + TAG_LEN);
        self.inner.file.read_exact_at(&mut buf, enc.start)?;
        let n = self
            .inner
            .opener
            .open_in_place(index, &mut buf)
            .map_err(|e| BlobError::from_crypto(&self.inner.key, e))?;
        buf.truncate(n);
        let bytes = Bytes::from(buf);
        let mut cache = self.inner.cache.lock().expect("segment cache");
        if !cache.iter().any(|(i, _)| *i == index) {
            if cache.len() == CACHED_SEGMENTS {
                cache.pop_front();
            }
            cache.push_back((index, bytes.clone()));
        }
        Ok(bytes)
    }

    /// Plaintext bytes `range`; fails on a range past the end.
    pub fn read_range(&self, range: Range<u64>) -> Result<Bytes, BlobError> {
        let len = self.plain_len();
        if range.start > range.end || range.end > len {
            return Err(BlobError::InvalidRange {
                key: self.inner.key.clone(),
                start: range.start,
                end: range.end,
                len,
            });
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let size = self.inner.layout.segment_size();
        let first = range.start / size;
        let last = (range.end - 1) / size;
        // The final segment is authenticated as final whenever a read reaches the end.
        if range.end == len {
            self.segment(self.inner.layout.segment_count() - 1)?;
        }
        if first == last {
            let seg = self.segment(first)?;
            let base = first * size;
            return Ok(seg.slice((range.start - base) as usize..(range.end - base) as usize));
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        for index in first..=last {
            let seg = self.segment(index)?;
            let base = index * size;
            let lo = range.start.max(base) - base;
            let hi = range.end.min(base + seg.len() as u64) - base;
            out.extend_from_slice(&seg[lo as usize..hi as usize]);
        }
        Ok(out.freeze())
    }

    /// Copy plaintext from offset `pos` into `out`; returns the count (0 at the end).
    fn read_at(&self, pos: u64, out: &mut [u8]) -> Result<usize, BlobError> {
        let len = self.plain_len();
        if pos >= len || out.is_empty() {
            if pos == len && !out.is_empty() {
                // Reaching the end verifies the final segment.
                self.segment(self.inner.layout.segment_count() - 1)?;
            }
            return Ok(0);
        }
        let size = self.inner.layout.segment_size();
        let index = pos / size;
        let seg = self.segment(index)?;
        let off = (pos - index * size) as usize;
        let n = out.len().min(seg.len() - off);
        out[..n].copy_from_slice(&seg[off..off + n]);
        Ok(n)
    }

    /// A `Read + Seek` cursor over the plaintext starting at `pos`.
    pub fn cursor(&self, pos: u64) -> PlainCursor {
        PlainCursor {
            reader: self.clone(),
            pos,
        }
    }
}

/// `Read + Seek` over a [`DecryptingReader`]'s plaintext (its own position).
#[derive(Clone, Debug)]
pub struct PlainCursor {
    reader: DecryptingReader,
    pos: u64,
}

impl Read for PlainCursor {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read_at(self.pos, out).map_err(|e| match e {
            BlobError::Io(io) => io,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        })?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PlainCursor {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.reader.plain_len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

impl Length for DecryptingReader {
    fn len(&self) -> u64 {
        self.plain_len()
    }
}

impl ChunkReader for DecryptingReader {
    type T = PlainCursor;

    fn get_read(&self, start: u64) -> parquet::errors::Result<PlainCursor> {
        Ok(self.cursor(start))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let end = start
            .checked_add(length as u64)
            .filter(|&end| end <= self.plain_len())
            .ok_or_else(|| {
                ParquetError::EOF(format!(
                    "read of {length} bytes at {start} is past the end ({} bytes)",
                    self.plain_len()
                ))
            })?;
        self.read_range(start..end)
            .map_err(|e| ParquetError::External(Box::new(e)))
    }
}
