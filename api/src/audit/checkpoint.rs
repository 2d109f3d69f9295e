//! Signed checkpoints of the audit chain's head, kept where the database's writer cannot
//! rewrite them: the hash chain alone detects an edited entry, but not a log whose tail
//! was deleted, nor one rewritten from scratch with fresh hashes. A checkpoint is the
//! head's sequence number and hash, signed with an Ed25519 key held outside the database
//! (the gateway's keys directory, [`SIGNING_KEY_FILE`]) and published to the object
//! store under [`PREFIX`]; [`check`] then refuses a chain that no longer holds that entry
//! with that hash.
//!
//! Stored form, built like the operator's deletion certificates (the same signing rules,
//! `serre_crypto::certificate`):
//!
//! ```json
//! {"checkpoint": {"version":1,"issuer":"serre-api","seq":1234,"hash":"<64 hex>",
//!   "time":"2026-12-07T02:00:00Z"},
//!  "signature": "<base64 Ed25519 signature>", "keyId": "ed25519:<16 hex>"}
//! ```
//!
//! The signed bytes are the `checkpoint` object as compact JSON, fields in that order:
//! `jq -cj .checkpoint cp.json` prints them, and `openssl pkeyutl -verify -rawin` checks
//! the signature with the public key (docs/audit.md).

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serre_crypto::certificate::{MAX_COUNT, utc_seconds};
use serre_crypto::{CertificateSigner, CertificateVerifier};

use crate::blobs::{BlobError, BlobStore};
use crate::store::{Store, StoreError};

/// Version of the checkpoint document.
pub const CHECKPOINT_VERSION: u32 = 1;
/// Where checkpoints live in the object store: `<PREFIX>/<seq, 20 digits>.json`.
pub const PREFIX: &str = "audit-checkpoints";
/// The signing key's file in the gateway's keys directory (PKCS#8 PEM).
pub const SIGNING_KEY_FILE: &str = "audit-signing-key.pem";
/// Who signs, in every checkpoint.
pub const ISSUER: &str = "serre-api";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("invalid checkpoint: {0}")]
    Invalid(String),
    #[error("checkpoint signature: {0}")]
    Signature(#[from] serre_crypto::CryptoError),
    #[error("checkpoint document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("object store: {0}")]
    Blob(#[from] BlobError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
}

/// The chain's head at one moment. Field order is the signed order: do not reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpoint {
    /// [`CHECKPOINT_VERSION`].
    pub version: u32,
    pub issuer: String,
    /// Sequence number of the head entry.
    pub seq: u64,
    /// Its hash (64 lowercase hex digits).
    pub hash: String,
    /// Whole seconds, UTC.
    #[serde(with = "utc_seconds")]
    pub time: DateTime<Utc>,
}

impl Checkpoint {
    /// The exact bytes that are signed, after checking the rules that make them
    /// reproducible with any JSON tool.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let invalid = |m: &str| Err(CheckpointError::Invalid(m.to_owned()));
        if self.version != CHECKPOINT_VERSION {
            return invalid("unsupported version");
        }
        if self.issuer.is_empty() || !self.issuer.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return invalid("issuer must be non-empty printable ASCII");
        }
        if self.seq == 0 || self.seq > MAX_COUNT {
            return invalid("seq must be between 1 and 2^53-1");
        }
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if self.hash.len() != 64 || !self.hash.bytes().all(hex) {
            return invalid("hash must be 64 lowercase hex digits");
        }
        Ok(serde_json::to_vec(self)?)
    }
}

/// The stored document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// Standard base64 of the Ed25519 signature over [`Checkpoint::canonical_bytes`].
    pub signature: String,
    pub key_id: String,
}

/// Sign the head `(seq, hash)` as of `time`.
pub fn sign(
    signer: &CertificateSigner,
    seq: i64,
    hash: &str,
    time: DateTime<Utc>,
) -> Result<SignedCheckpoint, CheckpointError> {
    let seq = u64::try_from(seq).map_err(|_| CheckpointError::Invalid("negative seq".into()))?;
    let draft = Checkpoint {
        version: CHECKPOINT_VERSION,
        issuer: ISSUER.to_owned(),
        seq,
        hash: hash.to_owned(),
        time,
    };
    let bytes = draft.canonical_bytes()?;
    Ok(SignedCheckpoint {
        // As signed: the time truncated to whole seconds.
        checkpoint: serde_json::from_slice(&bytes)?,
        signature: signer.sign_bytes(&bytes),
        key_id: signer.key_id().to_owned(),
    })
}

/// Check the signature; returns the checkpoint.
pub fn verify<'a>(
    verifier: &CertificateVerifier,
    signed: &'a SignedCheckpoint,
) -> Result<&'a Checkpoint, CheckpointError> {
    let bytes = signed.checkpoint.canonical_bytes()?;
    verifier.verify_bytes(&bytes, &signed.signature, &signed.key_id)?;
    Ok(&signed.checkpoint)
}

/// The object key of the checkpoint of entry `seq`.
pub fn object_key(seq: u64) -> String {
    format!("{PREFIX}/{seq:020}.json")
}

/// Publish a signed checkpoint to the object store.
pub async fn publish(blobs: &BlobStore, signed: &SignedCheckpoint) -> Result<(), CheckpointError> {
    let json = serde_json::to_vec_pretty(signed)?;
    blobs
        .put_public(&object_key(signed.checkpoint.seq), Bytes::from(json))
        .await?;
    Ok(())
}

/// The published checkpoint of the highest entry, if any (unverified: the caller
/// checks its signature). Keys are zero-padded, so the greatest key is the latest.
pub async fn latest(blobs: &BlobStore) -> Result<Option<SignedCheckpoint>, CheckpointError> {
    let mut keys = blobs.list_public(PREFIX).await?;
    keys.retain(|k| k.ends_with(".json"));
    let Some(key) = keys.into_iter().max() else {
        return Ok(None);
    };
    let Some(bytes) = blobs.get_public(&key).await? else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_slice(&bytes).map_err(|e| {
        CheckpointError::Invalid(format!("{key}: {e}"))
    })?))
}

/// Publish a checkpoint of the chain's head whenever it has moved, every `interval`,
/// until `shutdown` resolves (the gateway publishes the final head itself once its audit
/// writer has drained, `app.rs`). Several replicas may publish the same head: each writes
/// the same entry's checkpoint, equally valid.
pub async fn run(
    store: Store,
    blobs: BlobStore,
    signer: std::sync::Arc<CertificateSigner>,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut published: Option<i64> = None;
    loop {
        match publish_head(&store, &blobs, &signer, published).await {
            Ok(Some(seq)) => {
                tracing::info!(seq, "audit checkpoint published");
                published = Some(seq);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not publish an audit checkpoint; retrying"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Sign and publish the head unless it is `published` already (or the log is empty);
/// the sequence number published.
pub async fn publish_head(
    store: &Store,
    blobs: &BlobStore,
    signer: &CertificateSigner,
    published: Option<i64>,
) -> Result<Option<i64>, CheckpointError> {
    let Some((seq, hash)) = store.audit_head().await? else {
        return Ok(None);
    };
    if published == Some(seq) {
        return Ok(None);
    }
    let signed = sign(signer, seq, &hash, Utc::now())?;
    publish(blobs, &signed).await?;
    Ok(Some(seq))
}

#[cfg(test)]
mod tests;
