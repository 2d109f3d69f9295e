//! Sync I/O adapters: [`EncryptWriter`], [`DecryptReader`], [`encrypt_to`] and [`decrypt_to`].

use std::io::{self, Read, Write};

use super::super::keys::DataKey;
use super::super::{CryptoError, Result};
use super::{HEADER_LEN, Header, Segments, TAG_LEN};

/// Encrypts everything written to it into `inner`. Call [`finish`](Self::finish): it
/// writes the final segment; an object whose writer was dropped unfinished fails to
/// decrypt (truncated). Holds one segment of memory.
pub struct EncryptWriter<W: Write> {
    pub(super) inner: W,
    segments: Segments,
    pub(super) buf: Vec<u8>,
    poisoned: bool,
}

impl<W: Write> EncryptWriter<W> {
    /// Write the header to `inner` and start encrypting with a fresh per-object key.
    pub fn new(mut inner: W, key: &DataKey) -> Result<Self> {
        let header = Header::random()?;
        let segments = Segments::new(key, &header)?;
        inner.write_all(&header.encode())?;
        Ok(Self {
            inner,
            buf: Vec::with_capacity(segments.size + TAG_LEN),
            segments,
            poisoned: false,
        })
    }

    /// Encrypt and write the final segment, flush, and return the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.seal_and_write(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    fn seal_and_write(&mut self, last: bool) -> Result<()> {
        if self.poisoned {
            return Err(CryptoError::Poisoned);
        }
        let res = self
            .segments
            .seal(&mut self.buf, last)
            .and_then(|()| self.inner.write_all(&self.buf).map_err(CryptoError::from));
        self.buf.clear();
        self.poisoned = res.is_err();
        res
    }

    /// Encrypt everything `reader` yields, reading straight into the segment buffer.
    fn write_from<R: Read>(&mut self, mut reader: R) -> Result<u64> {
        let size = self.segments.size;
        let mut total = 0u64;
        loop {
            let filled = self.buf.len();
            self.buf.resize(size, 0);
            let (n, end) = match reader.read(&mut self.buf[filled..]) {
                Ok(n) => (n, n == 0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => (0, false),
                Err(e) => {
                    self.buf.truncate(filled);
                    return Err(e.into());
                }
            };
            self.buf.truncate(filled + n);
            if end {
                return Ok(total);
            }
            total += n as u64;
            if self.buf.len() == size {
                self.seal_and_write(false)?;
            }
        }
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(CryptoError::Poisoned.into_io());
        }
        let size = self.segments.size;
        let mut rest = data;
        while !rest.is_empty() {
            let take = (size - self.buf.len()).min(rest.len());
            let (now, later) = rest.split_at(take);
            self.buf.extend_from_slice(now);
            rest = later;
            // A full segment is never the final one (the final is always short), so
            // it can go out now.
            if self.buf.len() == size {
                self.seal_and_write(false).map_err(CryptoError::into_io)?;
            }
        }
        Ok(data.len())
    }

    /// Flushes the inner writer; a partial segment stays buffered until it is full
    /// or [`finish`](EncryptWriter::finish) is called.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts an encrypted object read from `inner`. Reads return plaintext of verified
/// segments only; the end of the plaintext (`Ok(0)`) is reported only after the final
/// segment verified. Holds one segment of memory.
pub struct DecryptReader<R: Read> {
    inner: R,
    segments: Segments,
    pub(super) buf: Vec<u8>,
    /// Verified plaintext is `buf[pos..plain_end]`.
    pos: usize,
    plain_end: usize,
    state: ReadState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Reading,
    Done,
    Failed,
}

impl<R: Read> DecryptReader<R> {
    /// Read and check the header, derive the object key.
    pub fn new(mut inner: R, key: &DataKey) -> Result<Self> {
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut inner, &mut header)?;
        let header = Header::decode(&header[..got])?;
        let segments = Segments::new(key, &header)?;
        Ok(Self {
            inner,
            buf: vec![0u8; segments.size + TAG_LEN],
            segments,
            pos: 0,
            plain_end: 0,
            state: ReadState::Reading,
        })
    }

    /// The next verified segment's plaintext, `None` after the final one verified.
    /// Zero-copy alternative to `Read`.
    pub fn next_segment(&mut self) -> Result<Option<&[u8]>> {
        match self.state {
            ReadState::Done => return Ok(None),
            ReadState::Failed => return Err(CryptoError::Poisoned),
            ReadState::Reading => {}
        }
        let res = self.decrypt_next();
        if res.is_err() {
            self.state = ReadState::Failed;
            self.pos = 0;
            self.plain_end = 0;
        }
        res?;
        let plain = &self.buf[self.pos..self.plain_end];
        self.pos = self.plain_end;
        Ok(Some(plain))
    }

    fn decrypt_next(&mut self) -> Result<()> {
        let full = self.segments.size + TAG_LEN;
        let got = read_full(&mut self.inner, &mut self.buf[..full])?;
        let last = got < full;
        if last && got == 0 {
            return Err(CryptoError::Truncated("final segment missing"));
        }
        if last && got < TAG_LEN {
            return Err(CryptoError::Truncated("final segment shorter than a tag"));
        }
        let len = self.segments.open(&mut self.buf[..got], last)?;
        if last {
            self.state = ReadState::Done;
        }
        self.pos = 0;
        self.plain_end = len;
        Ok(())
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.plain_end {
            if self.state == ReadState::Done {
                return Ok(0);
            }
            // Loops again on an empty (final) segment.
            self.next_segment().map_err(CryptoError::into_io)?;
            self.pos = 0;
        }
        let n = out.len().min(self.plain_end - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Read until `buf` is full or the input ends; returns the count read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

/// Encrypt all of `reader` into `writer`; returns the plaintext byte count. Bounded
/// memory (one segment).
pub fn encrypt_to<R: Read, W: Write>(key: &DataKey, reader: R, writer: W) -> Result<u64> {
    let mut enc = EncryptWriter::new(writer, key)?;
    let n = enc.write_from(reader)?;
    enc.finish()?;
    Ok(n)
}

/// Decrypt all of `reader` into `writer`; returns the plaintext byte count. Only
/// verified segments reach `writer`, but on error the segments before the bad one
/// have been written: treat the output as garbage unless this returns `Ok`.
pub fn decrypt_to<R: Read, W: Write>(key: &DataKey, reader: R, mut writer: W) -> Result<u64> {
    let mut dec = DecryptReader::new(reader, key)?;
    let mut total = 0u64;
    while let Some(plain) = dec.next_segment()? {
        writer.write_all(plain)?;
        total += plain.len() as u64;
    }
    writer.flush()?;
    Ok(total)
}
