//! Async stream adapters: [`encrypt_stream`] and [`decrypt_stream`].

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use super::super::keys::DataKey;
use super::super::{BoxError, CryptoError, Result};
use super::{HEADER_LEN, Header, Segments, TAG_LEN};

/// Encrypt a stream of plaintext chunks (any sizes) into a stream of ciphertext
/// chunks: the header, then one chunk per segment (64 KiB + 16). Feed it to an
/// `object_store` multipart upload (`WriteMultipart::put` buffers parts to 5 MiB).
/// Memory: one segment plus the input chunk being consumed. An input error ends
/// the stream with [`CryptoError::Upstream`] and no final segment.
pub fn encrypt_stream<S, E>(
    key: &DataKey,
    input: S,
) -> Result<impl Stream<Item = Result<Bytes>> + use<S, E>>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BoxError>,
{
    let header = Header::random()?;
    let state = EncryptState {
        segments: Segments::new(key, &header)?,
        header: Some(Bytes::copy_from_slice(&header.encode())),
        input: Box::pin(input),
        pending: Bytes::new(),
        input_done: false,
        finished: false,
    };
    Ok(futures::stream::unfold(state, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    }))
}

struct EncryptState<S> {
    input: Pin<Box<S>>,
    segments: Segments,
    header: Option<Bytes>,
    pending: Bytes,
    input_done: bool,
    finished: bool,
}

impl<S, E> EncryptState<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BoxError>,
{
    async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        if let Some(header) = self.header.take() {
            return Some(Ok(header));
        }
        if self.finished {
            return None;
        }
        let size = self.segments.size;
        let mut segment = Vec::with_capacity(size + TAG_LEN);
        loop {
            if !self.pending.is_empty() {
                let take = (size - segment.len()).min(self.pending.len());
                segment.extend_from_slice(&self.pending.split_to(take));
                if segment.len() == size {
                    return Some(self.seal(segment, false));
                }
            } else if self.input_done {
                return Some(self.seal(segment, true));
            } else {
                match self.input.next().await {
                    Some(Ok(chunk)) => self.pending = chunk,
                    Some(Err(e)) => {
                        self.finished = true;
                        return Some(Err(CryptoError::Upstream(e.into())));
                    }
                    None => self.input_done = true,
                }
            }
        }
    }

    fn seal(&mut self, mut segment: Vec<u8>, last: bool) -> Result<Bytes> {
        let res = self.segments.seal(&mut segment, last);
        self.finished |= last || res.is_err();
        res.map(|()| Bytes::from(segment))
    }
}

/// Decrypt a stream of ciphertext chunks (any sizes) into a stream of plaintext
/// chunks, one per verified segment (empty segments are skipped). The stream ends
/// cleanly only after the final segment verified; any failure is its last item.
/// Memory: one segment plus the input chunk being consumed.
pub fn decrypt_stream<S, E>(
    key: &DataKey,
    input: S,
) -> impl Stream<Item = Result<Bytes>> + use<S, E>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BoxError>,
{
    let state = DecryptState {
        input: Box::pin(input),
        key: Some(key.clone()),
        segments: None,
        acc: BytesMut::new(),
        input_done: false,
        finished: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    })
}

struct DecryptState<S> {
    input: Pin<Box<S>>,
    /// Dropped (and zeroized) once the object key is derived.
    key: Option<DataKey>,
    segments: Option<Segments>,
    acc: BytesMut,
    input_done: bool,
    finished: bool,
}

impl<S, E> DecryptState<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BoxError>,
{
    async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        if self.finished {
            return None;
        }
        loop {
            match self.try_decrypt() {
                Ok(Some(plain)) if plain.is_empty() => return None,
                Ok(Some(plain)) => return Some(Ok(plain)),
                Ok(None) => {}
                Err(e) => {
                    self.finished = true;
                    self.acc = BytesMut::new();
                    return Some(Err(e));
                }
            }
            match self.input.next().await {
                Some(Ok(chunk)) => self.acc.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    self.finished = true;
                    return Some(Err(CryptoError::Upstream(e.into())));
                }
                None => self.input_done = true,
            }
        }
    }

    /// Decrypt the next segment if enough input is buffered; `None` = need more input.
    fn try_decrypt(&mut self) -> Result<Option<Bytes>> {
        if self.segments.is_none() {
            if self.acc.len() < HEADER_LEN {
                return if self.input_done {
                    Header::decode(&self.acc).map(|_| None)
                } else {
                    Ok(None)
                };
            }
            let header = Header::decode(&self.acc.split_to(HEADER_LEN))?;
            let key = self.key.take().ok_or(CryptoError::Poisoned)?;
            self.segments = Some(Segments::new(&key, &header)?);
        }
        let Some(segments) = self.segments.as_mut() else {
            return Err(CryptoError::Poisoned);
        };
        let full = segments.size + TAG_LEN;
        let last = if self.acc.len() >= full {
            false
        } else if self.input_done {
            true
        } else {
            return Ok(None);
        };
        if last && self.acc.is_empty() {
            return Err(CryptoError::Truncated("final segment missing"));
        }
        if last && self.acc.len() < TAG_LEN {
            return Err(CryptoError::Truncated("final segment shorter than a tag"));
        }
        let take = if last { self.acc.len() } else { full };
        let mut block = self.acc.split_to(take);
        let len = segments.open(&mut block, last)?;
        block.truncate(len);
        if last {
            self.finished = true;
        }
        Ok(Some(block.freeze()))
    }
}
