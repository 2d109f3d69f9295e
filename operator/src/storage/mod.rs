//! Sovereign encrypted storage for sandboxes: one bucket and one key per sandbox on
//! Garage (S3-compatible, self-hosted), a per-sandbox data key wrapped by Serre's KEK,
//! crypto-shredding at teardown and a signed deletion certificate.
//!
//! - [`StorageProvisioner`]: the store's admin operations; [`garage::GarageAdmin`]
//!   is the real implementation (Garage admin API v2).
//! - [`keys::StorageKeys`]: the KEK ring and the certificate signing key, from a
//!   Kubernetes Secret in Serre's namespace; wrapped data keys live in one other Secret
//!   there, an entry per sandbox.
//! - [`objects`]: S3 access with `object_store`, including Serre's own client-side
//!   encrypted writes ([`crate::crypto`]).
//! - [`lifecycle`]: what the operator does at provisioning and at teardown.

pub mod config;
pub mod garage;
pub mod keys;
pub mod lifecycle;
pub mod objects;

use async_trait::async_trait;

/// A bucket as the store reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketInfo {
    pub id: String,
    pub max_size: Option<u64>,
    pub objects: u64,
    pub bytes: u64,
}

/// What [`StorageProvisioner::ensure_bucket`] left: the bucket, and whether this call
/// created it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnsuredBucket {
    pub info: BucketInfo,
    pub created: bool,
}

/// An access key; the secret is only present when asked for.
#[derive(Clone)]
pub struct KeyCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for KeyCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Everything that can go wrong with storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object store admin API unreachable: {0}")]
    Unreachable(String),
    #[error("object store admin API answered {status} to {operation}: {message}")]
    Api {
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error("object store S3 API: {0}")]
    S3(#[from] object_store::Error),
    #[error("storage keys: {0}")]
    Keys(String),
    #[error("encryption: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Admin operations on the object store. Every method is idempotent, so a
/// reconcile interrupted at any point can simply run again.
#[async_trait]
pub trait StorageProvisioner: Send + Sync {
    /// The bucket with this global alias, if it exists.
    async fn bucket(&self, alias: &str) -> Result<Option<BucketInfo>>;
    /// Create the bucket if missing and set its size quota. `likely_new`: the caller
    /// has never seen it (creating first then saves a read).
    async fn ensure_bucket(
        &self,
        alias: &str,
        max_size: u64,
        likely_new: bool,
    ) -> Result<EnsuredBucket>;
    /// The key with exactly this name, with its secret, if it exists.
    async fn key(&self, name: &str) -> Result<Option<KeyCredentials>>;
    /// Find or create the key named `name`, allowed to read and write `bucket_id` only.
    /// `bucket_created`: [`Self::ensure_bucket`] has just created that bucket. A sandbox's
    /// key is only ever created after its bucket and deleted before it, so no key of that
    /// name can exist yet: it is created without a search.
    async fn ensure_key(
        &self,
        name: &str,
        bucket_id: &str,
        bucket_created: bool,
    ) -> Result<KeyCredentials>;
    /// Delete a bucket (must be empty); a missing bucket is not an error.
    async fn delete_bucket(&self, id: &str) -> Result<()>;
    /// Delete a key; a missing key is not an error.
    async fn delete_key(&self, access_key_id: &str) -> Result<()>;
    /// Names of every bucket alias and key, to look for orphans.
    async fn inventory(&self) -> Result<(Vec<String>, Vec<String>)>;
}

/// Bucket (and key) name of a sandbox. Sandbox names are DNS labels of at most 57
/// characters, so `serre-<name>` is a valid S3 bucket name of at most 63.
pub fn bucket_name(sandbox: &str) -> String {
    format!("serre-{sandbox}")
}
