//! [`decrypt_segments`]: a plaintext byte range decrypted as its encrypted segments
//! stream in, one segment in memory at a time.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::stream::{BoxStream, Stream, StreamExt};
use serre_crypto::{CryptoError, SegmentOpener};

use super::BlobError;

/// Plaintext bytes `plain` of one object, from `input`: exactly the encrypted bytes that
/// `EncryptedLayout::segments_for(plain)` names, in chunks of any size. Yields one chunk
/// per segment (at most one segment of plaintext; the first and last sliced to the
/// range), each only after its tag verified; a range that reaches the end of the object
/// opens its final segment as final, so a truncated object fails. The first error
/// (a tag, input that ends early, the store) is the stream's last item.
///
/// Memory: one segment buffer (segment size + tag) plus the input chunk being consumed,
/// whatever the length of the range.
pub(super) fn decrypt_segments<S>(
    key: String,
    opener: Arc<SegmentOpener>,
    plain: Range<u64>,
    input: S,
) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError>
where
    S: Stream<Item = object_store::Result<Bytes>> + Send + 'static,
{
    let (segments, _) = opener
        .layout()
        .segments_for(plain.clone())
        .map_err(|e| BlobError::from_crypto(&key, e))?;
    let state = RangeState {
        input: input.boxed(),
        opener,
        key,
        plain,
        segments,
        pending: Bytes::new(),
        buf: Vec::new(),
        done: false,
    };
    Ok(futures::stream::unfold(state, RangeState::next).boxed())
}

struct RangeState {
    input: BoxStream<'static, object_store::Result<Bytes>>,
    opener: Arc<SegmentOpener>,
    key: String,
    plain: Range<u64>,
    /// Segments still to open: the next one is `segments.start`.
    segments: Range<u64>,
    /// What is left of the input chunk being consumed.
    pending: Bytes,
    /// The encrypted segment being assembled.
    buf: Vec<u8>,
    done: bool,
}

impl RangeState {
    async fn next(mut self) -> Option<(Result<Bytes, BlobError>, Self)> {
        if self.done {
            return None;
        }
        loop {
            let item = match self.next_segment().await {
                Ok(Some(chunk)) if chunk.is_empty() => continue,
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => return None,
                Err(e) => Err(e),
            };
            self.done = item.is_err();
            if self.done {
                // Nothing of a failed read stays around.
                self.pending = Bytes::new();
                self.buf = Vec::new();
            }
            return Some((item, self));
        }
    }

    /// The next segment's plaintext, sliced to the range (empty when the range holds
    /// none of it: an empty final segment); `None` after the last one.
    async fn next_segment(&mut self) -> Result<Option<Bytes>, BlobError> {
        let index = self.segments.start;
        if index == self.segments.end {
            return Ok(None);
        }
        let layout = self.opener.layout();
        let enc = layout.segment_encrypted_range(index);
        let need = (enc.end - enc.start) as usize;
        self.buf.reserve_exact(need);
        while self.buf.len() < need {
            if self.pending.is_empty() {
                match self.input.next().await {
                    Some(Ok(chunk)) => self.pending = chunk,
                    Some(Err(e)) => return Err(BlobError::from_store(&self.key, e)),
                    None => {
                        return Err(BlobError::from_crypto(
                            &self.key,
                            CryptoError::Truncated(
                                "the object ended before the range's last segment",
                            ),
                        ));
                    }
                }
            }
            let take = (need - self.buf.len()).min(self.pending.len());
            self.buf.extend_from_slice(&self.pending[..take]);
            self.pending.advance(take);
        }
        let n = self
            .opener
            .open_in_place(index, &mut self.buf)
            .map_err(|e| BlobError::from_crypto(&self.key, e))?;
        let seg = layout.segment_plain_range(index);
        debug_assert_eq!(seg.end - seg.start, n as u64);
        let lo = self.plain.start.max(seg.start) - seg.start;
        let hi = self.plain.end.min(seg.end).max(seg.start) - seg.start;
        self.segments.start += 1;
        // The verified buffer goes out as the chunk; the next segment gets a new one.
        let mut out = std::mem::take(&mut self.buf);
        out.truncate(n);
        if lo >= hi {
            return Ok(Some(Bytes::new()));
        }
        Ok(Some(Bytes::from(out).slice(lo as usize..hi as usize)))
    }
}
