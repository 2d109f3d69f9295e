//! Key hierarchy: a key-encryption key (KEK) held by Serre wraps one random data key
//! per sandbox; the data key is what encrypts the sandbox's objects.
//!
//! A wrapped data key is AES-256-GCM(KEK, random 96-bit nonce, data key) with the
//! associated data `"serre/key-wrap/v1" 0x00 ‖ u32be(len id) ‖ KEK id ‖ u32be(len ctx) ‖
//! ctx`, so a blob only opens with the KEK that made it and for the context (e.g. the
//! sandbox) it was made for. [`KeyWrapper`] is the seam for an external KMS: [`Kek`] is
//! the local implementation and [`KekRing`] adds rotation (wrap with the newest, unwrap
//! with whichever id the blob names).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{CryptoError, Result, random_bytes};

/// Length of every symmetric key here (AES-256).
pub const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
const WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;
const WRAP_AAD_LABEL: &[u8] = b"serre/key-wrap/v1\0";
const COMPACT_PREFIX: &str = "serre-wk1";
const WRAPPED_VERSION: u8 = 1;

/// A per-sandbox 256-bit data key. Zeroized on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct DataKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl DataKey {
    /// A fresh random key from the system generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        random_bytes(bytes.as_mut())?;
        Ok(Self { bytes })
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut bytes = bytes;
        let key = Self {
            bytes: Zeroizing::new(bytes),
        };
        bytes.zeroize();
        key
    }

    fn from_slice(slice: &[u8]) -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if slice.len() != KEY_LEN {
            return Err(CryptoError::InvalidKey(format!(
                "expected {KEY_LEN} bytes, got {}",
                slice.len()
            )));
        }
        bytes.copy_from_slice(slice);
        Ok(Self { bytes })
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The key in standard base64, as S3 SSE-C wants it in
    /// `x-amz-server-side-encryption-customer-key` (and `object_store`'s
    /// `with_ssec_encryption`). The returned string is zeroized on drop.
    pub fn sse_c_key_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.bytes.as_ref()))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Wraps and unwraps data keys. Implemented locally by [`Kek`] and [`KekRing`]; an
/// external KMS (Vault transit, a cloud KMS) would implement it by calling out.
pub trait KeyWrapper: Send + Sync {
    /// Id of the key that [`wrap_key`](Self::wrap_key) uses now.
    fn key_id(&self) -> &str;
    /// Wrap `key` for `context` (e.g. `"tenant/sandbox"`); the same context is needed
    /// to unwrap.
    fn wrap_key(&self, key: &DataKey, context: &str) -> Result<WrappedKey>;
    /// Unwrap; fails with [`CryptoError::Unwrap`] on a wrong key, a wrong context or
    /// any modified byte, and [`CryptoError::UnknownKek`] on a KEK id it does not hold.
    fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> Result<DataKey>;
}

/// A local key-encryption key: 32 raw bytes and an id (`[A-Za-z0-9._-]{1,64}`) that
/// goes into every blob it wraps so keys can be rotated.
pub struct Kek {
    id: String,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl Kek {
    pub fn from_bytes(id: impl Into<String>, bytes: [u8; KEY_LEN]) -> Result<Self> {
        let id = id.into();
        validate_kek_id(&id)?;
        let mut bytes = bytes;
        let kek = Self {
            id,
            bytes: Zeroizing::new(bytes),
        };
        bytes.zeroize();
        Ok(kek)
    }

    /// From standard base64 of 32 bytes (surrounding whitespace ignored, so the
    /// content of a secret file can be passed as read).
    pub fn from_base64(id: impl Into<String>, b64: &str) -> Result<Self> {
        let decoded = Zeroizing::new(
            B64.decode(b64.trim())
                .map_err(|e| CryptoError::InvalidKey(format!("KEK is not base64: {e}")))?,
        );
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            CryptoError::InvalidKey(format!(
                "KEK must be {KEY_LEN} bytes, got {}",
                decoded.len()
            ))
        })?;
        Self::from_bytes(id, bytes)
    }

    /// A fresh random KEK (for tests and first-time setup).
    pub fn generate(id: impl Into<String>) -> Result<Self> {
        let mut bytes = [0u8; KEY_LEN];
        random_bytes(&mut bytes)?;
        Self::from_bytes(id, bytes)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn aead(&self) -> Result<LessSafeKey> {
        let unbound = UnboundKey::new(&AES_256_GCM, self.bytes.as_ref())
            .map_err(|_| CryptoError::InvalidKey("AES-256 key rejected".into()))?;
        Ok(LessSafeKey::new(unbound))
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl KeyWrapper for Kek {
    fn key_id(&self) -> &str {
        &self.id
    }

    fn wrap_key(&self, key: &DataKey, context: &str) -> Result<WrappedKey> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let aad = wrap_aad(&self.id, context);
        let mut in_out = Zeroizing::new(Vec::with_capacity(WRAPPED_LEN));
        in_out.extend_from_slice(key.expose());
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut *in_out,
            )
            .map_err(|_| CryptoError::InvalidKey("AES-GCM seal failed".into()))?;
        let ciphertext: [u8; WRAPPED_LEN] = in_out
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("unexpected wrapped length".into()))?;
        Ok(WrappedKey {
            kek_id: self.id.clone(),
            nonce,
            ciphertext,
        })
    }

    fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> Result<DataKey> {
        if wrapped.kek_id != self.id {
            return Err(CryptoError::UnknownKek(wrapped.kek_id.clone()));
        }
        let aad = wrap_aad(&self.id, context);
        let mut in_out = Zeroizing::new(wrapped.ciphertext);
        let plain = self
            .aead()?
            .open_in_place(
                Nonce::assume_unique_for_key(wrapped.nonce),
                Aad::from(&aad),
                in_out.as_mut(),
            )
            .map_err(|_| CryptoError::Unwrap)?;
        DataKey::from_slice(plain)
    }
}

/// Several KEKs for rotation: wraps with `primary`, unwraps with whichever KEK the
/// blob names. Rotating = adding a new primary, re-wrapping the stored data keys
/// (cheap: 48 bytes each), then dropping the old KEK.
#[derive(Debug)]
pub struct KekRing {
    primary: Kek,
    previous: Vec<Kek>,
}

impl KekRing {
    pub fn new(primary: Kek, previous: Vec<Kek>) -> Result<Self> {
        let mut seen = vec![primary.id()];
        for kek in &previous {
            if seen.contains(&kek.id()) {
                return Err(CryptoError::InvalidKey(format!(
                    "KEK id {:?} appears twice",
                    kek.id()
                )));
            }
            seen.push(kek.id());
        }
        Ok(Self { primary, previous })
    }

    /// Unwrap with whichever KEK made `wrapped` and wrap again with the primary.
    pub fn rewrap(&self, wrapped: &WrappedKey, context: &str) -> Result<WrappedKey> {
        let key = self.unwrap_key(wrapped, context)?;
        self.primary.wrap_key(&key, context)
    }
}

impl KeyWrapper for KekRing {
    fn key_id(&self) -> &str {
        self.primary.id()
    }

    fn wrap_key(&self, key: &DataKey, context: &str) -> Result<WrappedKey> {
        self.primary.wrap_key(key, context)
    }

    fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> Result<DataKey> {
        std::iter::once(&self.primary)
            .chain(&self.previous)
            .find(|k| k.id() == wrapped.kek_id)
            .ok_or_else(|| CryptoError::UnknownKek(wrapped.kek_id.clone()))?
            .unwrap_key(wrapped, context)
    }
}

/// A data key wrapped by a KEK. Compact form (its `Display`/`FromStr`):
/// `serre-wk1:<kek id>:<base64 nonce>:<base64 ciphertext‖tag>`; JSON form (serde):
/// `{"version":1,"kekId":…,"nonce":…,"ciphertext":…}`. Neither is secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WrappedKeyJson", into = "WrappedKeyJson")]
pub struct WrappedKey {
    kek_id: String,
    nonce: [u8; NONCE_LEN],
    ciphertext: [u8; WRAPPED_LEN],
}

impl WrappedKey {
    /// Id of the KEK needed to unwrap this.
    pub fn kek_id(&self) -> &str {
        &self.kek_id
    }

    /// Stable public name of this wrapped key: `wk-` and the first 16 hex digits of
    /// SHA-256 over its compact form. Needs no secret; what a deletion certificate
    /// records as `keyIdDestroyed`. Re-wrapping (KEK rotation) gives a new name.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.to_string().as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("wk-{hex}")
    }

    fn from_parts(kek_id: &str, nonce_b64: &str, ciphertext_b64: &str) -> Result<Self> {
        validate_kek_id(kek_id).map_err(|e| CryptoError::InvalidWrappedKey(e.to_string()))?;
        let bad = |what: &str| CryptoError::InvalidWrappedKey(format!("bad {what}"));
        let nonce = B64
            .decode(nonce_b64)
            .ok()
            .and_then(|v| <[u8; NONCE_LEN]>::try_from(v.as_slice()).ok())
            .ok_or_else(|| bad("nonce"))?;
        let ciphertext = B64
            .decode(ciphertext_b64)
            .ok()
            .and_then(|v| <[u8; WRAPPED_LEN]>::try_from(v.as_slice()).ok())
            .ok_or_else(|| bad("ciphertext"))?;
        Ok(Self {
            kek_id: kek_id.to_owned(),
            nonce,
            ciphertext,
        })
    }
}

impl fmt::Display for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{COMPACT_PREFIX}:{}:{}:{}",
            self.kek_id,
            B64.encode(self.nonce),
            B64.encode(self.ciphertext)
        )
    }
}

impl FromStr for WrappedKey {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        match parts.as_slice() {
            [COMPACT_PREFIX, id, nonce, ct] => Self::from_parts(id, nonce, ct),
            [prefix, ..] if prefix.starts_with("serre-wk") => Err(CryptoError::InvalidWrappedKey(
                format!("unsupported version {prefix:?}"),
            )),
            _ => Err(CryptoError::InvalidWrappedKey(format!(
                "expected {COMPACT_PREFIX}:<kek id>:<nonce>:<ciphertext>"
            ))),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WrappedKeyJson {
    version: u8,
    kek_id: String,
    nonce: String,
    ciphertext: String,
}

impl From<WrappedKey> for WrappedKeyJson {
    fn from(w: WrappedKey) -> Self {
        Self {
            version: WRAPPED_VERSION,
            nonce: B64.encode(w.nonce),
            ciphertext: B64.encode(w.ciphertext),
            kek_id: w.kek_id,
        }
    }
}

impl TryFrom<WrappedKeyJson> for WrappedKey {
    type Error = CryptoError;

    fn try_from(j: WrappedKeyJson) -> Result<Self> {
        if j.version != WRAPPED_VERSION {
            return Err(CryptoError::InvalidWrappedKey(format!(
                "unsupported version {}",
                j.version
            )));
        }
        Self::from_parts(&j.kek_id, &j.nonce, &j.ciphertext)
    }
}

fn validate_kek_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CryptoError::InvalidKey(format!(
            "KEK id {id:?} must be 1-64 characters of [A-Za-z0-9._-]"
        )))
    }
}

/// Length-prefixed so that no (id, context) pair can collide with another.
fn wrap_aad(kek_id: &str, context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_LABEL.len() + 8 + kek_id.len() + context.len());
    aad.extend_from_slice(WRAP_AAD_LABEL);
    for part in [kek_id.as_bytes(), context.as_bytes()] {
        // Contexts longer than 4 GiB are not a thing; saturate rather than wrap.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

#[cfg(test)]
mod tests;
