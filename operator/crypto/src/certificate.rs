//! Signed deletion certificates: proof, checkable without Serre, that a sandbox's
//! stored data was removed and its data key destroyed.
//!
//! Stored form (pretty or compact, either verifies):
//!
//! ```json
//! {"certificate": {"version":1,"sandbox":…,"tenant":…,"bucket":…,"objectsRemoved":…,
//!   "bytesRemoved":…,"keyIdDestroyed":…,"startedAt":…,"completedAt":…,"issuer":…},
//!  "signature": "<base64 Ed25519 signature>", "keyId": "ed25519:<16 hex>"}
//! ```
//!
//! **What is signed**: the `certificate` object as compact JSON — fields in exactly the
//! order above, no whitespace, integers in decimal, timestamps `YYYY-MM-DDTHH:MM:SSZ`.
//! To make that byte string reproducible by any JSON tool, a certificate is only valid
//! if every string is printable ASCII (0x20–0x7E, where JSON escaping is only `\"` and
//! `\\`) and both counts are at most 2^53 − 1; [`DeletionCertificate::canonical_bytes`]
//! enforces it. `jq -cj .certificate` then prints the exact signed bytes, so:
//!
//! ```sh
//! jq -cj .certificate deletion-certificate.json > payload.json
//! jq -r .signature deletion-certificate.json | base64 -d > sig.bin
//! openssl pkeyutl -verify -pubin -inkey serre-signing.pub.pem -rawin \
//!   -in payload.json -sigfile sig.bin     # "Signature Verified Successfully"
//! ```
//!
//! `keyId` is not signed; it names the public key: `ed25519:` and the first 16 hex
//! digits of SHA-256 over the 32-byte raw public key
//! (`openssl pkey -pubin -in serre-signing.pub.pem -outform DER | tail -c 32 | sha256sum`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SECRET_KEY_LENGTH, Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{CryptoError, Result, random_bytes};

/// Version of the certificate document.
pub const CERTIFICATE_VERSION: u32 = 1;
/// Largest count a certificate may carry (JSON's safe integer: every tool reads it exactly).
pub const MAX_COUNT: u64 = (1 << 53) - 1;

/// What was deleted. Field order is the signed order: do not reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeletionCertificate {
    /// [`CERTIFICATE_VERSION`].
    pub version: u32,
    pub sandbox: String,
    pub tenant: String,
    pub bucket: String,
    pub objects_removed: u64,
    pub bytes_removed: u64,
    /// The destroyed wrapped data key, [`WrappedKey::fingerprint`](super::WrappedKey::fingerprint).
    pub key_id_destroyed: String,
    /// Whole seconds, UTC (sub-seconds are dropped when signing).
    #[serde(with = "utc_seconds")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "utc_seconds")]
    pub completed_at: DateTime<Utc>,
    /// Who issued it, e.g. `serre-operator/<cluster>`.
    pub issuer: String,
}

impl DeletionCertificate {
    /// The exact bytes that are signed, after checking the rules that make them
    /// reproducible outside Serre (see the module docs).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>> {
        let invalid = |m: String| Err(CryptoError::InvalidCertificate(m));
        if self.version != CERTIFICATE_VERSION {
            return invalid(format!("unsupported version {}", self.version));
        }
        for (name, value) in [
            ("sandbox", &self.sandbox),
            ("tenant", &self.tenant),
            ("bucket", &self.bucket),
            ("keyIdDestroyed", &self.key_id_destroyed),
            ("issuer", &self.issuer),
        ] {
            if value.is_empty() || !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                return invalid(format!("{name} must be non-empty printable ASCII"));
            }
        }
        for (name, value) in [
            ("objectsRemoved", self.objects_removed),
            ("bytesRemoved", self.bytes_removed),
        ] {
            if value > MAX_COUNT {
                return invalid(format!("{name} exceeds 2^53-1"));
            }
        }
        if self.completed_at < self.started_at {
            return invalid("completedAt is before startedAt".into());
        }
        Ok(serde_json::to_vec(self)?)
    }
}

/// The stored document: certificate, signature and the id of the signing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedCertificate {
    pub certificate: DeletionCertificate,
    /// Standard base64 of the 64-byte Ed25519 signature over
    /// [`DeletionCertificate::canonical_bytes`].
    pub signature: String,
    pub key_id: String,
}

impl SignedCertificate {
    /// Indented JSON, for storing next to the deleted data and for people.
    pub fn to_json_pretty(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn from_json(json: &str) -> Result<Self> {
        Ok(serde_json::from_str(json)?)
    }
}

/// Serre's Ed25519 signing key. Zeroized on drop; `Debug` shows only the key id.
pub struct CertificateSigner {
    key: SigningKey,
    key_id: String,
}

impl CertificateSigner {
    pub fn from_bytes(secret: &[u8; SECRET_KEY_LENGTH]) -> Self {
        let key = SigningKey::from_bytes(secret);
        let key_id = key_id_of(&key.verifying_key());
        Self { key, key_id }
    }

    /// From standard base64 of the 32-byte secret (whitespace around it ignored).
    pub fn from_base64(b64: &str) -> Result<Self> {
        let bytes = Zeroizing::new(
            B64.decode(b64.trim())
                .map_err(|e| CryptoError::InvalidKey(format!("signing key is not base64: {e}")))?,
        );
        let secret: Zeroizing<[u8; SECRET_KEY_LENGTH]> =
            Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
                CryptoError::InvalidKey(format!(
                    "signing key must be {SECRET_KEY_LENGTH} bytes, got {}",
                    bytes.len()
                ))
            })?);
        Ok(Self::from_bytes(&secret))
    }

    /// From a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), e.g. made by
    /// `openssl genpkey -algorithm ed25519`.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        let key = SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| CryptoError::InvalidKey(format!("signing key PEM: {e}")))?;
        let key_id = key_id_of(&key.verifying_key());
        Ok(Self { key, key_id })
    }

    /// PKCS#8 PEM if the text has a PEM header, base64 of the raw secret otherwise
    /// (the content of a secret file, as read).
    pub fn load(text: &str) -> Result<Self> {
        if text.contains("-----BEGIN") {
            Self::from_pkcs8_pem(text)
        } else {
            Self::from_base64(text)
        }
    }

    pub fn generate() -> Result<Self> {
        let mut secret = Zeroizing::new([0u8; SECRET_KEY_LENGTH]);
        random_bytes(secret.as_mut())?;
        Ok(Self::from_bytes(&secret))
    }

    /// The secret as PKCS#8 PEM (for writing a new key to a secret).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| CryptoError::InvalidKey(format!("PKCS#8 encoding: {e}")))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn verifier(&self) -> CertificateVerifier {
        CertificateVerifier {
            key: self.key.verifying_key(),
            key_id: self.key_id.clone(),
        }
    }

    /// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`), for `openssl`.
    pub fn public_key_pem(&self) -> Result<String> {
        self.verifier().public_key_pem()
    }

    /// Sign; the returned document holds the certificate as signed (timestamps
    /// truncated to whole seconds).
    pub fn sign(&self, certificate: &DeletionCertificate) -> Result<SignedCertificate> {
        let bytes = certificate.canonical_bytes()?;
        Ok(SignedCertificate {
            certificate: serde_json::from_slice(&bytes)?,
            signature: self.sign_bytes(&bytes),
            key_id: self.key_id.clone(),
        })
    }

    /// Standard base64 of the Ed25519 signature over `bytes`, for other signed documents
    /// built the same way (canonical bytes, signature, key id), such as audit checkpoints.
    pub fn sign_bytes(&self, bytes: &[u8]) -> String {
        B64.encode(self.key.sign(bytes).to_bytes())
    }
}

impl fmt::Debug for CertificateSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key that checks certificates.
#[derive(Clone, Debug)]
pub struct CertificateVerifier {
    key: VerifyingKey,
    key_id: String,
}

impl CertificateVerifier {
    pub fn from_bytes(public: &[u8; 32]) -> Result<Self> {
        let key = VerifyingKey::from_bytes(public)
            .map_err(|e| CryptoError::InvalidKey(format!("Ed25519 public key: {e}")))?;
        Ok(Self::from_key(key))
    }

    /// From SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_public_key_pem(pem: &str) -> Result<Self> {
        let key = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|e| CryptoError::InvalidKey(format!("public key PEM: {e}")))?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: VerifyingKey) -> Self {
        Self {
            key_id: key_id_of(&key),
            key,
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key_pem(&self) -> Result<String> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| CryptoError::InvalidKey(format!("SPKI encoding: {e}")))
    }

    /// Check the key id, then the signature over the canonical bytes (strict Ed25519:
    /// non-canonical signatures and small-order keys are refused).
    pub fn verify(&self, signed: &SignedCertificate) -> Result<()> {
        let bytes = signed.certificate.canonical_bytes()?;
        self.verify_bytes(&bytes, &signed.signature, &signed.key_id)
    }

    /// Check that `key_id` names this key and that `signature` (standard base64) is its
    /// strict Ed25519 signature over `bytes`.
    pub fn verify_bytes(&self, bytes: &[u8], signature: &str, key_id: &str) -> Result<()> {
        if key_id != self.key_id {
            return Err(CryptoError::KeyIdMismatch {
                expected: self.key_id.clone(),
                found: key_id.to_owned(),
            });
        }
        let raw = B64
            .decode(signature)
            .map_err(|_| CryptoError::BadSignature)?;
        let raw: [u8; 64] = raw
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadSignature)?;
        self.key
            .verify_strict(bytes, &Signature::from_bytes(&raw))
            .map_err(|_| CryptoError::BadSignature)
    }

    /// Parse a stored document and verify it; returns the certificate.
    pub fn verify_json(&self, json: &str) -> Result<DeletionCertificate> {
        let signed = SignedCertificate::from_json(json)?;
        self.verify(&signed)?;
        Ok(signed.certificate)
    }
}

fn key_id_of(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("ed25519:{hex}")
}

/// `YYYY-MM-DDTHH:MM:SSZ`, and only that: parsing re-formats and compares, so one
/// text maps to one instant and back.
pub mod utc_seconds {
    use chrono::{DateTime, NaiveDateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de};

    const FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.format(FORMAT))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        let t = NaiveDateTime::parse_from_str(&text, FORMAT)
            .map_err(|e| de::Error::custom(format!("timestamp {text:?}: {e}")))?
            .and_utc();
        if t.format(FORMAT).to_string() != text {
            return Err(de::Error::custom(format!(
                "timestamp {text:?} is not in the form YYYY-MM-DDTHH:MM:SSZ"
            )));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests;
