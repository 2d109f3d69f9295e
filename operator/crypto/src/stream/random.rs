//! Random access to an encrypted object: which segments hold a plaintext range, and
//! opening any one segment by its index.
//!
//! The sequential readers in [`sync_io`](super::sync_io) and
//! [`async_io`](super::async_io) walk the STREAM counter from 0; here the counter is
//! the segment index, and whether a segment is final comes from the object's length
//! ([`EncryptedLayout`]) instead of from reaching the end of the input.
//!
//! What random access cannot see by itself: a range that does not reach the end of the
//! plaintext never authenticates the object's length, so an object truncated to
//! another possible length and read only at its start looks fine. Two defences:
//! a range that reaches the end always opens the final segment (so a forged end fails
//! its tag), and callers should compare [`EncryptedLayout::plain_len`] with a length
//! they recorded at write time.

use std::ops::Range;

use ring::aead::{Aad, NONCE_LEN, Nonce};
use zeroize::Zeroize;

use super::super::keys::DataKey;
use super::super::{CryptoError, Result};
use super::{HEADER_LEN, Header, NONCE_PREFIX_LEN, Segments, TAG_LEN};

/// Where everything is in one encrypted object, from its header and total length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedLayout {
    header: Header,
    segment_size: u64,
    encrypted_len: u64,
    plain_len: u64,
    /// Number of segments, the final (short, possibly empty) one included: ≥ 1.
    segments: u64,
}

impl EncryptedLayout {
    /// Parse `header` (at least its first [`HEADER_LEN`] bytes; more are ignored) and
    /// check that `encrypted_len` (header included) is a length this header's segment
    /// size can produce. An object cut at a segment boundary fails here
    /// ([`CryptoError::InvalidLength`]); one cut inside a segment fails when its last
    /// segment is opened.
    pub fn new(header: &[u8], encrypted_len: u64) -> Result<Self> {
        let header = Header::decode(header.get(..HEADER_LEN).unwrap_or(header))?;
        let segment_size = u64::from(header.segment_size);
        let full = segment_size + TAG_LEN as u64;
        let body = encrypted_len
            .checked_sub(HEADER_LEN as u64)
            .ok_or(CryptoError::InvalidLength(encrypted_len))?;
        let (whole, rest) = (body / full, body % full);
        // The final segment is always there and always shorter than a full one, so
        // what follows the full segments is one tag and 0 to segment_size - 1 bytes.
        if rest < TAG_LEN as u64 {
            return Err(CryptoError::InvalidLength(encrypted_len));
        }
        let segments = whole + 1;
        if segments > 1 << 32 {
            return Err(CryptoError::TooManySegments);
        }
        Ok(Self {
            header,
            segment_size,
            encrypted_len,
            plain_len: whole * segment_size + rest - TAG_LEN as u64,
            segments,
        })
    }

    /// Plaintext length of the object.
    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    /// Encrypted length of the object, header included.
    pub fn encrypted_len(&self) -> u64 {
        self.encrypted_len
    }

    /// Plaintext bytes in every non-final segment.
    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// Number of segments, the final one included (at least 1).
    pub fn segment_count(&self) -> u64 {
        self.segments
    }

    /// Whether segment `index` is the final one.
    pub fn is_final(&self, index: u64) -> bool {
        index + 1 == self.segments
    }

    /// Plaintext offsets held by segment `index` (empty for an empty final segment).
    pub fn segment_plain_range(&self, index: u64) -> Range<u64> {
        let start = (index * self.segment_size).min(self.plain_len);
        start..(start + self.segment_size).min(self.plain_len)
    }

    /// Encrypted offsets (in the whole object) of segment `index`, tag included.
    pub fn segment_encrypted_range(&self, index: u64) -> Range<u64> {
        let full = self.segment_size + TAG_LEN as u64;
        let start = HEADER_LEN as u64 + index * full;
        start..(start + full).min(self.encrypted_len)
    }

    /// The segments that hold plaintext bytes `plain` (indices), and the encrypted byte
    /// range to fetch for them. A range that reaches the end of the plaintext includes
    /// the final segment, even when it holds no plaintext, so that the object's end is
    /// authenticated. An empty range needs no segment. Fails on a range that is
    /// reversed or goes past the end.
    pub fn segments_for(&self, plain: Range<u64>) -> Result<(Range<u64>, Range<u64>)> {
        self.check_range(&plain)?;
        if plain.is_empty() {
            let at = self
                .segment_encrypted_range(plain.start / self.segment_size)
                .start;
            let at = at.min(self.encrypted_len);
            return Ok((0..0, at..at));
        }
        let first = plain.start / self.segment_size;
        let last = if plain.end == self.plain_len {
            self.segments - 1
        } else {
            (plain.end - 1) / self.segment_size
        };
        let bytes =
            self.segment_encrypted_range(first).start..self.segment_encrypted_range(last).end;
        Ok((first..last + 1, bytes))
    }

    fn check_range(&self, plain: &Range<u64>) -> Result<()> {
        if plain.start > plain.end || plain.end > self.plain_len {
            return Err(CryptoError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "plaintext range {}..{} is outside the object's {} bytes",
                    plain.start, plain.end, self.plain_len
                ),
            )));
        }
        Ok(())
    }
}

/// Opens any segment of one object by index. The per-object key is derived once, from
/// the data key and the header; `Send + Sync`, so one opener serves concurrent readers.
pub struct SegmentOpener {
    segments: Segments,
    layout: EncryptedLayout,
}

impl std::fmt::Debug for SegmentOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentOpener")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl SegmentOpener {
    pub fn new(key: &DataKey, layout: &EncryptedLayout) -> Result<Self> {
        Ok(Self {
            segments: Segments::new(key, &layout.header)?,
            layout: layout.clone(),
        })
    }

    /// The layout this opener was made for.
    pub fn layout(&self) -> &EncryptedLayout {
        &self.layout
    }

    /// STREAM nonce of segment `index`: the same layout as `Segments::next_nonce`
    /// (prefix ‖ u32be counter ‖ final flag), which the round-trip tests pin.
    fn nonce(&self, index: u64) -> Result<Nonce> {
        let counter = u32::try_from(index).map_err(|_| CryptoError::TooManySegments)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.segments.prefix);
        nonce[NONCE_PREFIX_LEN..NONCE_LEN - 1].copy_from_slice(&counter.to_be_bytes());
        nonce[NONCE_LEN - 1] = u8::from(self.layout.is_final(index));
        Ok(Nonce::assume_unique_for_key(nonce))
    }

    /// Verify and decrypt segment `index` (`buf` = ciphertext ‖ tag, exactly the
    /// segment's bytes) in place; returns the plaintext length (`buf[..n]`). On an
    /// authentication failure the buffer is zeroized.
    pub fn open_in_place(&self, index: u64, buf: &mut [u8]) -> Result<usize> {
        if index >= self.layout.segments {
            return Err(CryptoError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "segment {index} does not exist (the object has {})",
                    self.layout.segments
                ),
            )));
        }
        let expected = self.layout.segment_encrypted_range(index);
        if buf.len() as u64 != expected.end - expected.start {
            return Err(CryptoError::Truncated("segment has the wrong length"));
        }
        let nonce = self.nonce(index)?;
        match self.segments.key.open_in_place(nonce, Aad::empty(), buf) {
            Ok(plain) => Ok(plain.len()),
            Err(_) => {
                buf.zeroize();
                Err(CryptoError::SegmentAuth { segment: index })
            }
        }
    }

    /// Verify and decrypt segment `index`; returns its plaintext.
    pub fn open(&self, index: u64, ciphertext_with_tag: &[u8]) -> Result<Vec<u8>> {
        let mut buf = ciphertext_with_tag.to_vec();
        let n = self.open_in_place(index, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Plaintext bytes `plain`, from `fetched`: exactly the encrypted bytes that
    /// [`EncryptedLayout::segments_for`] named for that range. Every segment covering
    /// the range is verified before any byte is returned.
    pub fn decrypt_range(
        &self,
        layout: &EncryptedLayout,
        plain: Range<u64>,
        fetched: &[u8],
    ) -> Result<Vec<u8>> {
        if layout != &self.layout {
            return Err(CryptoError::InvalidKey(
                "opener used with another object's layout".into(),
            ));
        }
        let (indices, bytes) = layout.segments_for(plain.clone())?;
        if fetched.len() as u64 != bytes.end - bytes.start {
            return Err(CryptoError::Truncated(
                "fetched ciphertext does not match the segment range",
            ));
        }
        let mut out = Vec::with_capacity((plain.end - plain.start) as usize);
        let mut buf = Vec::with_capacity(layout.segment_size as usize + TAG_LEN);
        for index in indices {
            let enc = layout.segment_encrypted_range(index);
            let from = (enc.start - bytes.start) as usize;
            let to = (enc.end - bytes.start) as usize;
            buf.clear();
            buf.extend_from_slice(&fetched[from..to]);
            let n = self.open_in_place(index, &mut buf)?;
            let seg = layout.segment_plain_range(index);
            debug_assert_eq!(seg.end - seg.start, n as u64);
            let lo = plain.start.max(seg.start) - seg.start;
            let hi = plain.end.min(seg.end).max(seg.start) - seg.start;
            if lo < hi {
                out.extend_from_slice(&buf[lo as usize..hi as usize]);
            }
        }
        buf.zeroize();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{SEGMENT_SIZE, ciphertext_len, encrypt_to};

    const S: usize = SEGMENT_SIZE;

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u64).wrapping_mul(2_654_435_761).to_le_bytes()[3])
            .collect()
    }

    fn encrypt(key: &DataKey, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encrypt_to(key, plain, &mut out).unwrap();
        out
    }

    fn read(
        opener: &SegmentOpener,
        layout: &EncryptedLayout,
        object: &[u8],
        r: Range<u64>,
    ) -> Result<Vec<u8>> {
        let (_, bytes) = layout.segments_for(r.clone())?;
        opener.decrypt_range(layout, r, &object[bytes.start as usize..bytes.end as usize])
    }

    fn interesting_ranges(len: u64) -> Vec<Range<u64>> {
        let s = S as u64;
        let mut points = vec![0, 1, len, len.saturating_sub(1), len / 2];
        for k in 1..=3 {
            for d in [s * k - 1, s * k, s * k + 1] {
                points.push(d);
            }
        }
        points.retain(|&p| p <= len);
        points.sort_unstable();
        points.dedup();
        let mut ranges = Vec::new();
        for &a in &points {
            for &b in &points {
                if a <= b {
                    ranges.push(a..b);
                }
            }
        }
        ranges
    }

    #[test]
    fn every_interesting_range_matches_the_plaintext() {
        let key = DataKey::generate().unwrap();
        for len in [0, 1, S - 1, S, S + 1, 3 * S + 17] {
            let plain = plaintext(len);
            let object = encrypt(&key, &plain);
            let layout = EncryptedLayout::new(&object, object.len() as u64).unwrap();
            assert_eq!(layout.plain_len(), len as u64);
            assert_eq!(layout.encrypted_len(), ciphertext_len(len as u64));
            assert_eq!(layout.segment_count(), (len / S + 1) as u64);
            let opener = SegmentOpener::new(&key, &layout).unwrap();
            for r in interesting_ranges(len as u64) {
                let got = read(&opener, &layout, &object, r.clone())
                    .unwrap_or_else(|e| panic!("len {len} range {r:?}: {e}"));
                assert_eq!(
                    got,
                    &plain[r.start as usize..r.end as usize],
                    "len {len} range {r:?}"
                );
            }
        }
    }

    #[test]
    fn segments_for_names_only_the_needed_segments() {
        let key = DataKey::generate().unwrap();
        let object = encrypt(&key, &plaintext(3 * S + 17));
        let layout = EncryptedLayout::new(&object[..HEADER_LEN], object.len() as u64).unwrap();
        let s = S as u64;
        let full = s + TAG_LEN as u64;
        let h = HEADER_LEN as u64;
        assert_eq!(layout.segments_for(0..1).unwrap(), (0..1, h..h + full));
        assert_eq!(
            layout.segments_for(s - 1..s + 1).unwrap(),
            (0..2, h..h + 2 * full)
        );
        assert_eq!(
            layout.segments_for(s..2 * s).unwrap(),
            (1..2, h + full..h + 2 * full)
        );
        // Reaching the end always includes the final segment.
        assert_eq!(
            layout.segments_for(3 * s..3 * s + 17).unwrap(),
            (3..4, h + 3 * full..object.len() as u64)
        );
        assert_eq!(layout.segments_for(5..5).unwrap().0, 0..0);

        // A plaintext that is a multiple of the segment size ends with an empty final
        // segment, which a read up to the end opens too.
        let object = encrypt(&key, &plaintext(S));
        let layout = EncryptedLayout::new(&object, object.len() as u64).unwrap();
        assert_eq!(layout.segment_count(), 2);
        assert_eq!(
            layout.segments_for(10..s).unwrap(),
            (0..2, h..object.len() as u64)
        );
        assert_eq!(layout.segments_for(10..s - 1).unwrap(), (0..1, h..h + full));
    }

    #[test]
    fn open_single_segments_by_index() {
        let key = DataKey::generate().unwrap();
        let plain = plaintext(2 * S + 5);
        let object = encrypt(&key, &plain);
        let layout = EncryptedLayout::new(&object, object.len() as u64).unwrap();
        let opener = SegmentOpener::new(&key, &layout).unwrap();
        for i in 0..layout.segment_count() {
            let enc = layout.segment_encrypted_range(i);
            let got = opener
                .open(i, &object[enc.start as usize..enc.end as usize])
                .unwrap();
            let p = layout.segment_plain_range(i);
            assert_eq!(got, &plain[p.start as usize..p.end as usize]);
        }
        // Segment 1's bytes presented as segment 0: the counter differs.
        let enc = layout.segment_encrypted_range(1);
        assert!(matches!(
            opener.open(0, &object[enc.start as usize..enc.end as usize]),
            Err(CryptoError::SegmentAuth { segment: 0 })
        ));
        assert!(opener.open(3, &[0u8; 16]).is_err());
    }

    #[test]
    fn a_flipped_byte_in_a_fetched_segment_fails() {
        let key = DataKey::generate().unwrap();
        let plain = plaintext(3 * S + 17);
        let object = encrypt(&key, &plain);
        let layout = EncryptedLayout::new(&object, object.len() as u64).unwrap();
        let opener = SegmentOpener::new(&key, &layout).unwrap();
        let s = S as u64;
        for (range, flip_in) in [(0..10, 0u64), (s + 3..2 * s + 3, 2), (3 * s..3 * s + 17, 3)] {
            let (_, bytes) = layout.segments_for(range.clone()).unwrap();
            let mut fetched = object[bytes.start as usize..bytes.end as usize].to_vec();
            let enc = layout.segment_encrypted_range(flip_in);
            fetched[(enc.start - bytes.start + 7) as usize] ^= 0x01;
            let err = opener.decrypt_range(&layout, range, &fetched).unwrap_err();
            assert!(
                matches!(err, CryptoError::SegmentAuth { segment } if segment == flip_in),
                "{err}"
            );
        }
        // The wrong data key fails on the first segment it opens.
        let other = SegmentOpener::new(&DataKey::generate().unwrap(), &layout).unwrap();
        assert!(read(&other, &layout, &object, s..s + 1).is_err());
    }

    #[test]
    fn a_range_past_the_end_is_an_error() {
        let key = DataKey::generate().unwrap();
        let object = encrypt(&key, &plaintext(S + 1));
        let layout = EncryptedLayout::new(&object, object.len() as u64).unwrap();
        let opener = SegmentOpener::new(&key, &layout).unwrap();
        let len = S as u64 + 1;
        assert!(layout.segments_for(0..len + 1).is_err());
        assert!(layout.segments_for(len + 1..len + 1).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 5..3;
        assert!(layout.segments_for(reversed).is_err());
        assert!(opener.decrypt_range(&layout, 0..len + 1, &object).is_err());
        // A fetch of the wrong length is refused rather than misread.
        assert!(matches!(
            opener.decrypt_range(&layout, 0..len, &object[HEADER_LEN..object.len() - 1]),
            Err(CryptoError::Truncated(_))
        ));
    }

    #[test]
    fn truncation_is_detected() {
        let key = DataKey::generate().unwrap();
        let plain = plaintext(3 * S + 17);
        let object = encrypt(&key, &plain);
        let full = S + TAG_LEN;
        // Cut at a segment boundary: no possible length.
        for segments in 0..=3 {
            let cut = HEADER_LEN + segments * full;
            assert!(
                matches!(
                    EncryptedLayout::new(&object, cut as u64),
                    Err(CryptoError::InvalidLength(_))
                ),
                "cut after {segments} segments"
            );
        }
        assert!(EncryptedLayout::new(&object, 10).is_err());
        assert!(EncryptedLayout::new(&object[..10], 100).is_err());
        // Cut inside a segment, at a length that is possible: the last segment, now
        // opened as final, fails.
        let cut = HEADER_LEN + 2 * full + 40;
        let layout = EncryptedLayout::new(&object, cut as u64).unwrap();
        assert_eq!(layout.plain_len(), 2 * S as u64 + 24);
        let opener = SegmentOpener::new(&key, &layout).unwrap();
        let end = layout.plain_len();
        assert!(matches!(
            read(&opener, &layout, &object[..cut], end - 1..end),
            Err(CryptoError::SegmentAuth { segment: 2 })
        ));
        // Cut right after a full segment plus a tag's worth of the next: a forged empty
        // final segment; a read that reaches the end opens it and fails.
        let cut = HEADER_LEN + full + TAG_LEN;
        let layout = EncryptedLayout::new(&object, cut as u64).unwrap();
        assert_eq!(layout.plain_len(), S as u64);
        let opener = SegmentOpener::new(&key, &layout).unwrap();
        assert!(matches!(
            read(&opener, &layout, &object[..cut], 0..S as u64),
            Err(CryptoError::SegmentAuth { segment: 1 })
        ));
    }

    #[test]
    fn a_bad_header_is_refused() {
        let key = DataKey::generate().unwrap();
        let mut object = encrypt(&key, &plaintext(100));
        object[0] ^= 1;
        assert!(matches!(
            EncryptedLayout::new(&object, object.len() as u64),
            Err(CryptoError::BadMagic)
        ));
        object[0] ^= 1;
        // A changed salt derives another key: segment 0 fails.
        object[20] ^= 1;
        let layout = EncryptedLayout::new(&object, object.len() as u64).unwrap();
        let opener = SegmentOpener::new(&key, &layout).unwrap();
        assert!(read(&opener, &layout, &object, 0..100).is_err());
    }
}
