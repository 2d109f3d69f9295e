//! Streaming authenticated encryption of stored objects.
//!
//! ```text
//! object  = header ‖ segment_0 ‖ … ‖ segment_n          (n ≥ 0, segment_n is final)
//! header  = "SERREC" ‖ version=1 ‖ alg=1 ‖ u32be segment_size ‖ salt[32]   (44 bytes)
//! segment = AES-256-GCM(K, nonce_i, plaintext_i) ‖ tag[16]
//! K ‖ P   = HKDF-SHA256(ikm = data key, salt = salt, info = "serre/stream/v1" ‖ header)
//!           (32-byte key K, 7-byte nonce prefix P)
//! nonce_i = P ‖ u32be(i) ‖ (0x01 if final else 0x00)     (STREAM, as aead's StreamBE32)
//! ```
//!
//! Every non-final segment holds exactly `segment_size` plaintext bytes and the final one
//! strictly fewer (0 to `segment_size - 1`): a plaintext whose length is a multiple of
//! the segment size, the empty one included, ends with an empty final segment. So a
//! reader knows a segment is final by its length alone, needs no look-ahead, and a
//! stream cut at a segment boundary ends on a non-final segment: an error.
//!
//! What each attack runs into: a flipped bit anywhere → a tag fails (in the header: the
//! key changes, so segment 0 fails, or the header no longer parses); reordered segments
//! → the counter in the nonce; a segment from another object → a different key (fresh
//! salt per object); truncation → a non-final segment last or a short final one; a
//! wrong data key → segment 0 fails. Plaintext of a segment is only released once its
//! tag has verified.
//!
//! Segments are 64 KiB: the same as age, so the tag overhead is 0.02 % and the
//! ring AES-GCM throughput is already at its plateau, while a stream holds one segment
//! buffer (~64 KiB) on each side, so thousands of concurrent uploads fit in a few
//! hundred MiB. 1 MiB segments would gain nothing measurable and cost 16× the memory
//! per stream and per concurrent reader.
//!
//! What is *not* bound: the object's name. An object replaced by another whole object
//! encrypted with the same data key decrypts fine; callers that care keep a digest or
//! an index of object names elsewhere.

use hkdf::Hkdf;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::keys::{DataKey, KEY_LEN};
use super::{CryptoError, Result, random_bytes};

mod async_io;
mod random;
mod sync_io;

pub use async_io::{decrypt_stream, encrypt_stream};
pub use random::{EncryptedLayout, SegmentOpener};
pub use sync_io::{DecryptReader, EncryptWriter, decrypt_to, encrypt_to};

/// First bytes of every encrypted object.
pub const MAGIC: [u8; 6] = *b"SERREC";
/// Format version written in the header.
pub const FORMAT_VERSION: u8 = 1;
/// Algorithm id 1: AES-256-GCM, STREAM-BE32 nonces, HKDF-SHA256 per-object key.
pub const ALG_AES256GCM_HKDF_SHA256: u8 = 1;
/// Plaintext bytes per segment written by this version.
pub const SEGMENT_SIZE: usize = 64 * 1024;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Per-object random salt length.
pub const SALT_LEN: usize = 32;
/// Header length: magic, version, algorithm, segment size, salt.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + 1 + 4 + SALT_LEN;

/// Readers accept headers with segment sizes in this range (memory stays bounded).
const MIN_SEGMENT_SIZE: u32 = 1 << 10;
const MAX_SEGMENT_SIZE: u32 = 1 << 20;
const NONCE_PREFIX_LEN: usize = NONCE_LEN - 5;
const HKDF_INFO: &[u8] = b"serre/stream/v1";

/// Ciphertext length (header included) of a plaintext of `plaintext_len` bytes.
/// Saturates at `u64::MAX` for lengths no object can have.
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    let segments = plaintext_len / SEGMENT_SIZE as u64 + 1;
    (HEADER_LEN as u64)
        .saturating_add(plaintext_len)
        .saturating_add(segments.saturating_mul(TAG_LEN as u64))
}

/// Plaintext length of an encrypted object of `ciphertext_len` bytes (header
/// included), or [`CryptoError::InvalidLength`] if no plaintext encrypts to that
/// length.
pub fn plaintext_len(ciphertext_len: u64) -> Result<u64> {
    let body = ciphertext_len
        .checked_sub(HEADER_LEN as u64)
        .ok_or(CryptoError::InvalidLength(ciphertext_len))?;
    let full = (SEGMENT_SIZE + TAG_LEN) as u64;
    let rest = body % full;
    if rest < TAG_LEN as u64 {
        return Err(CryptoError::InvalidLength(ciphertext_len));
    }
    Ok(body / full * SEGMENT_SIZE as u64 + rest - TAG_LEN as u64)
}

/// The parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Header {
    segment_size: u32,
    salt: [u8; SALT_LEN],
}

impl Header {
    fn random() -> Result<Self> {
        let mut salt = [0u8; SALT_LEN];
        random_bytes(&mut salt)?;
        Ok(Self {
            segment_size: SEGMENT_SIZE as u32,
            salt,
        })
    }

    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..6].copy_from_slice(&MAGIC);
        out[6] = FORMAT_VERSION;
        out[7] = ALG_AES256GCM_HKDF_SHA256;
        out[8..12].copy_from_slice(&self.segment_size.to_be_bytes());
        out[12..].copy_from_slice(&self.salt);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let seen = bytes.len().min(MAGIC.len());
        if bytes[..seen] != MAGIC[..seen] {
            return Err(CryptoError::BadMagic);
        }
        let (Some(magic), Some(&version), Some(&alg), Some(size), Some(salt)) = (
            bytes.get(..6),
            bytes.get(6),
            bytes.get(7),
            bytes.get(8..12),
            bytes.get(12..HEADER_LEN),
        ) else {
            return Err(CryptoError::Truncated("header"));
        };
        if magic != MAGIC {
            return Err(CryptoError::BadMagic);
        }
        if version != FORMAT_VERSION {
            return Err(CryptoError::UnsupportedVersion(version));
        }
        if alg != ALG_AES256GCM_HKDF_SHA256 {
            return Err(CryptoError::UnsupportedAlgorithm(alg));
        }
        let mut size_be = [0u8; 4];
        size_be.copy_from_slice(size);
        let segment_size = u32::from_be_bytes(size_be);
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(CryptoError::InvalidSegmentSize(segment_size));
        }
        let mut header = Self {
            segment_size,
            salt: [0u8; SALT_LEN],
        };
        header.salt.copy_from_slice(salt);
        Ok(header)
    }
}

/// The STREAM state of one object: its derived key, nonce prefix and segment counter.
struct Segments {
    key: LessSafeKey,
    prefix: [u8; NONCE_PREFIX_LEN],
    counter: u64,
    size: usize,
    done: bool,
}

impl Segments {
    fn new(data_key: &DataKey, header: &Header) -> Result<Self> {
        let encoded = header.encode();
        let hkdf = Hkdf::<Sha256>::new(Some(&header.salt), data_key.expose());
        let mut okm = Zeroizing::new([0u8; KEY_LEN + NONCE_PREFIX_LEN]);
        hkdf.expand_multi_info(&[HKDF_INFO, &encoded[..]], okm.as_mut())
            .map_err(|_| CryptoError::InvalidKey("HKDF output length".into()))?;
        let unbound = UnboundKey::new(&AES_256_GCM, &okm[..KEY_LEN])
            .map_err(|_| CryptoError::InvalidKey("AES-256 key rejected".into()))?;
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        prefix.copy_from_slice(&okm[KEY_LEN..]);
        Ok(Self {
            key: LessSafeKey::new(unbound),
            prefix,
            counter: 0,
            size: header.segment_size as usize,
            done: false,
        })
    }

    /// Nonce for the next segment; advances the counter.
    fn next_nonce(&mut self, last: bool) -> Result<Nonce> {
        if self.done {
            return Err(CryptoError::Poisoned);
        }
        let counter = u32::try_from(self.counter).map_err(|_| CryptoError::TooManySegments)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.prefix);
        nonce[NONCE_PREFIX_LEN..NONCE_LEN - 1].copy_from_slice(&counter.to_be_bytes());
        nonce[NONCE_LEN - 1] = u8::from(last);
        self.counter += 1;
        self.done = last;
        Ok(Nonce::assume_unique_for_key(nonce))
    }

    /// Encrypt `buf` in place and append the tag. Non-final segments must be full,
    /// final ones short.
    fn seal(&mut self, buf: &mut Vec<u8>, last: bool) -> Result<()> {
        let shape_ok = if last {
            buf.len() < self.size
        } else {
            buf.len() == self.size
        };
        if !shape_ok {
            return Err(CryptoError::Poisoned);
        }
        let nonce = self.next_nonce(last)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), buf)
            .map_err(|_| CryptoError::TooManySegments)?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Verify and decrypt `buf` (ciphertext ‖ tag) in place; returns the plaintext
    /// length. On failure the buffer is zeroized, so no unverified byte survives.
    fn open(&mut self, buf: &mut [u8], last: bool) -> Result<usize> {
        let segment = self.counter;
        let nonce = self.next_nonce(last)?;
        match self.key.open_in_place(nonce, Aad::empty(), buf) {
            Ok(plain) => Ok(plain.len()),
            Err(_) => {
                buf.zeroize();
                self.done = true;
                Err(CryptoError::SegmentAuth { segment })
            }
        }
    }
}

#[cfg(test)]
mod tests;
