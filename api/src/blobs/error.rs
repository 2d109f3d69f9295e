//! The one error type of the blob store.

use serre_crypto::CryptoError;

/// Everything that can go wrong storing or reading an encrypted blob. Messages name
/// objects by key only, never key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    #[error("invalid blob store configuration: {0}")]
    Config(String),

    #[error("blob {0:?} not found")]
    NotFound(String),

    #[error("range {start}..{end} is outside blob {key:?} ({len} bytes)")]
    InvalidRange {
        key: String,
        start: u64,
        end: u64,
        len: u64,
    },

    /// The stored object is not what was written: modified, truncated, replaced, or
    /// its recorded size is wrong.
    #[error("blob {key:?} failed its integrity check: {source}")]
    Integrity {
        key: String,
        #[source]
        source: CryptoError,
    },

    /// The blob's data key does not unwrap: wrong or missing KEK, wrong key name, or a
    /// damaged wrapped key.
    #[error("blob {key:?}: data key unavailable: {source}")]
    KeyUnwrap {
        key: String,
        #[source]
        source: CryptoError,
    },

    #[error("encryption: {0}")]
    Crypto(#[source] CryptoError),

    #[error("object store: {0}")]
    Store(#[source] object_store::Error),

    #[error("reading local file {path}: {source}")]
    LocalFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),

    #[error("background task failed: {0}")]
    Task(String),
}

impl BlobError {
    /// Low-cardinality category for metrics, logs and HTTP mapping.
    pub fn category(&self) -> &'static str {
        match self {
            BlobError::InvalidKey { .. } => "invalid_key",
            BlobError::Config(_) => "config",
            BlobError::NotFound(_) => "not_found",
            BlobError::InvalidRange { .. } => "invalid_range",
            BlobError::Integrity { .. } => "integrity",
            BlobError::KeyUnwrap { .. } => "key_unwrap",
            BlobError::Crypto(_) => "crypto",
            BlobError::Store(_) => "store",
            BlobError::LocalFile { .. } | BlobError::Io(_) => "io",
            BlobError::Task(_) => "internal",
        }
    }

    /// Sort a crypto error met while reading blob `key`.
    pub(crate) fn from_crypto(key: &str, e: CryptoError) -> Self {
        match e {
            CryptoError::BadMagic
            | CryptoError::UnsupportedVersion(_)
            | CryptoError::UnsupportedAlgorithm(_)
            | CryptoError::InvalidSegmentSize(_)
            | CryptoError::Truncated(_)
            | CryptoError::SegmentAuth { .. }
            | CryptoError::TooManySegments
            | CryptoError::InvalidLength(_) => BlobError::Integrity {
                key: key.to_owned(),
                source: e,
            },
            CryptoError::Unwrap
            | CryptoError::UnknownKek(_)
            | CryptoError::InvalidKey(_)
            | CryptoError::InvalidWrappedKey(_) => BlobError::KeyUnwrap {
                key: key.to_owned(),
                source: e,
            },
            CryptoError::Io(io) => BlobError::Io(io),
            CryptoError::Upstream(up) => match up.downcast::<object_store::Error>() {
                Ok(store) => BlobError::from_store(key, *store),
                Err(other) => BlobError::Io(std::io::Error::other(other)),
            },
            other => BlobError::Crypto(other),
        }
    }

    pub(crate) fn from_store(key: &str, e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound(key.to_owned()),
            other => BlobError::Store(other),
        }
    }
}
