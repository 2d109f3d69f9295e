//! Client-side encryption and signing for everything Serre puts in object storage.
//!
//! - [`keys`]: the key-encryption key ([`Kek`], rotatable by id, behind the
//!   [`KeyWrapper`] trait so an external KMS can replace it) and the per-sandbox
//!   [`DataKey`], stored wrapped as a [`WrappedKey`].
//! - [`stream`]: streaming authenticated encryption of objects (AES-256-GCM in 64 KiB
//!   segments, STREAM nonces, per-object HKDF key), sync ([`EncryptWriter`],
//!   [`DecryptReader`]) and async ([`encrypt_stream`], [`decrypt_stream`]).
//! - [`certificate`]: Ed25519-signed deletion certificates that can be checked without
//!   Serre (`jq` + `openssl`).
//!
//! The format, the key hierarchy and the verification command are described for a
//! newcomer and a reviewer in `docs/storage-crypto.md`.
//!
//! AES-GCM and the random generator come from `ring` (already in the dependency tree
//! through rustls): its assembly AES-GCM runs at several GB/s where the pure-Rust
//! `aes-gcm` crate measured about 1.2 GB/s on the same machine, and storage encryption
//! sits on the upload path of every object. The STREAM construction is implemented here
//! (it is twelve lines: see [`stream`]) with the same nonce layout as `aead::stream`'s
//! `StreamBE32`.

pub mod certificate;
pub mod keys;
pub mod stream;

pub use certificate::{
    CertificateSigner, CertificateVerifier, DeletionCertificate, SignedCertificate,
};
pub use keys::{DataKey, Kek, KekRing, KeyWrapper, WrappedKey};
pub use stream::{
    DecryptReader, EncryptWriter, ciphertext_len, decrypt_stream, decrypt_to, encrypt_stream,
    encrypt_to, plaintext_len,
};
pub use stream::{EncryptedLayout, SegmentOpener};

/// Boxed error from the stream a caller hands to the async adapters.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in this module. Authentication failures never carry
/// plaintext, and their messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("not a Serre encrypted object (bad magic)")]
    BadMagic,

    #[error("unsupported encrypted-object format version {0}")]
    UnsupportedVersion(u8),

    #[error("unsupported encryption algorithm id {0}")]
    UnsupportedAlgorithm(u8),

    #[error("invalid segment size {0} in header")]
    InvalidSegmentSize(u32),

    #[error("encrypted object is truncated: {0}")]
    Truncated(&'static str),

    #[error(
        "segment {segment} failed authentication: wrong key, or the object was modified, \
         reordered, truncated or spliced"
    )]
    SegmentAuth { segment: u64 },

    #[error("encrypted object has more than 2^32 segments")]
    TooManySegments,

    #[error("{0} bytes is not a possible encrypted-object length")]
    InvalidLength(u64),

    #[error("encrypted stream used after its end or after an error")]
    Poisoned,

    #[error("data key unwrap failed: wrong key-encryption key, wrong context, or tampered blob")]
    Unwrap,

    #[error("unknown key-encryption key id {0:?}")]
    UnknownKek(String),

    #[error("invalid key: {0}")]
    InvalidKey(String),

    #[error("invalid wrapped key: {0}")]
    InvalidWrappedKey(String),

    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),

    #[error("certificate key id {found:?} does not match the verifying key {expected:?}")]
    KeyIdMismatch { expected: String, found: String },

    #[error("certificate signature does not verify")]
    BadSignature,

    #[error("the system random generator failed")]
    Rng,

    #[error("I/O: {0}")]
    Io(#[source] std::io::Error),

    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),

    #[error("input stream failed: {0}")]
    Upstream(#[source] BoxError),
}

impl CryptoError {
    /// Low-cardinality category for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            CryptoError::BadMagic
            | CryptoError::UnsupportedVersion(_)
            | CryptoError::UnsupportedAlgorithm(_)
            | CryptoError::InvalidSegmentSize(_)
            | CryptoError::InvalidLength(_) => "format",
            CryptoError::Truncated(_) => "truncated",
            CryptoError::SegmentAuth { .. } => "authentication",
            CryptoError::TooManySegments | CryptoError::Poisoned => "usage",
            CryptoError::Unwrap | CryptoError::UnknownKek(_) => "key_unwrap",
            CryptoError::InvalidKey(_) | CryptoError::InvalidWrappedKey(_) => "invalid_key",
            CryptoError::InvalidCertificate(_)
            | CryptoError::KeyIdMismatch { .. }
            | CryptoError::BadSignature
            | CryptoError::Json(_) => "certificate",
            CryptoError::Rng => "rng",
            CryptoError::Io(_) => "io",
            CryptoError::Upstream(_) => "upstream",
        }
    }

    /// The error as an `io::Error` for `Read`/`Write` impls; [`From<io::Error>`] gets
    /// it back unchanged.
    pub(crate) fn into_io(self) -> std::io::Error {
        match self {
            CryptoError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
        }
    }
}

impl From<std::io::Error> for CryptoError {
    fn from(e: std::io::Error) -> Self {
        if !e.get_ref().is_some_and(|inner| inner.is::<CryptoError>()) {
            return CryptoError::Io(e);
        }
        match e.into_inner().map(|inner| inner.downcast::<CryptoError>()) {
            Some(Ok(crypto)) => *crypto,
            // Unreachable: checked above. Keep a sensible value rather than panic.
            _ => CryptoError::Io(std::io::Error::other("unreadable I/O error")),
        }
    }
}

pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

/// Fill `buf` from the system random generator.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Rng)
}
