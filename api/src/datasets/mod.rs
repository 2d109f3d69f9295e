//! Datasets: uploads streamed to a private temporary file, parsed and normalised by the
//! [`crate::data`] engine on a blocking thread, stored encrypted through
//! [`crate::blobs`], and recorded (dataset, immutable versions) in the database only once
//! the object is stored — so a failed upload leaves nothing visible.

pub mod keys;
pub mod upload;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use crate::blobs::{BlobBackend, BlobError, BlobStore};
use crate::config::{Config, DataConfig, DataStoreKind, Environment};
use crate::data::IngestLimits;
pub use keys::{DataKeys, KeysError};
use upload::UploadError;

/// Classifications a dataset may carry.
pub const CLASSIFICATIONS: [&str; 4] = ["open", "internal", "personal", "anonymised"];

/// Everything the data endpoints need beside the database.
pub struct DataPlane {
    pub blobs: BlobStore,
    secret: Zeroizing<Vec<u8>>,
    /// Signs the audit log's checkpoints (published to `blobs`).
    pub audit_signer: std::sync::Arc<serre_crypto::CertificateSigner>,
    pub config: DataConfig,
    /// Base URL of the gateway as clients see it (no trailing slash): `--public-url`, or
    /// the address the gateway listens on, set once bound.
    public_url: std::sync::OnceLock<String>,
    /// Private directory for uploads and views being built (mode 0700).
    pub tmp: PathBuf,
    /// One permit per ingest that may run at once (`--max-concurrent-ingests`); an ingest's
    /// thread holds its permit until it ends.
    pub ingests: Arc<Semaphore>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl DataPlane {
    /// Keys, blob store and temporary directory from the configuration. Production needs
    /// an explicit keys directory; development creates one under the data directory.
    pub fn open(config: &Config) -> Result<Self, DataPlaneError> {
        let data = &config.data;
        let keys = match (&data.data_keys_dir, config.environment) {
            (Some(dir), _) => DataKeys::load(dir)?,
            (None, Environment::Development) => {
                DataKeys::load_or_create(&config.data_dir.join("keys"))?
            }
            (None, Environment::Production) => {
                return Err(DataPlaneError::Config(
                    "--data-keys-dir is required in production (a directory with kek-active, kek.<id> and data-secret)".into(),
                ));
            }
        };
        let backend = blob_backend(data, &config.data_dir)?;
        let tmp = config.data_dir.join("tmp");
        private_dir(&tmp)?;
        let public_url = std::sync::OnceLock::new();
        if let Some(url) = &data.public_url {
            let _ = public_url.set(url.trim_end_matches('/').to_owned());
        }
        Ok(Self {
            blobs: BlobStore::new(backend, keys.keks)?,
            secret: keys.secret,
            audit_signer: keys.audit_signer,
            config: data.clone(),
            public_url,
            tmp,
            ingests: Arc::new(Semaphore::new(data.max_concurrent_ingests)),
        })
    }

    /// The data engine's limits for an upload, from the configuration.
    pub fn ingest_limits(&self) -> IngestLimits {
        IngestLimits {
            max_rows: self.config.max_rows,
            max_memory: self.config.max_ingest_memory,
            max_field_bytes: self.config.max_csv_field,
            max_record_bytes: self.config.max_csv_record,
            ..IngestLimits::default()
        }
    }

    /// A permit to ingest, waiting at most `--ingest-queue-wait` for one; past it the upload
    /// is refused as [`UploadError::Busy`] (503, `Retry-After`).
    pub async fn ingest_permit(&self) -> Result<OwnedSemaphorePermit, UploadError> {
        let wait = self.config.ingest_queue_wait;
        match tokio::time::timeout(wait, self.ingests.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => Err(UploadError::Task(closed.to_string())),
            Err(_) => Err(UploadError::Busy {
                limit: self.config.max_concurrent_ingests,
                waited: wait,
                retry_after: wait.max(Duration::from_secs(1)),
            }),
        }
    }

    /// The gateway's base URL for profiles and file links.
    pub fn public_url(&self) -> &str {
        self.public_url
            .get()
            .map_or("http://127.0.0.1", String::as_str)
    }

    /// Use the bound address as the public URL unless one was configured.
    pub fn set_listen_address(&self, addr: std::net::SocketAddr) {
        let _ = self.public_url.set(format!("http://{addr}"));
    }

    /// The secret that signs sharing tokens and derives pseudonym keys.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// A fresh path in the private temporary directory, removed when the guard drops.
    pub fn temp_file(&self, suffix: &str) -> TempPath {
        TempPath(
            self.tmp
                .join(format!("{}{suffix}", uuid::Uuid::new_v4().simple())),
        )
    }
}

/// The keys directory: `--data-keys-dir`, or `<data-dir>/keys` (development).
pub fn keys_dir(data: &DataConfig, data_dir: &Path) -> PathBuf {
    data.data_keys_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("keys"))
}

/// Where the blobs live, from the data flags: `<data-dir>/datasets`, or the S3 bucket.
pub fn blob_backend(data: &DataConfig, data_dir: &Path) -> Result<BlobBackend, DataPlaneError> {
    Ok(match data.data_store {
        DataStoreKind::Local => BlobBackend::Local {
            dir: data_dir.join("datasets"),
        },
        DataStoreKind::S3 => {
            let need = |v: &Option<String>, flag: &str| {
                v.clone().ok_or_else(|| {
                    DataPlaneError::Config(format!("{flag} is required with --data-store s3"))
                })
            };
            let secret_file = data.data_s3_secret_key_file.as_ref().ok_or_else(|| {
                DataPlaneError::Config(
                    "--data-s3-secret-key-file is required with --data-store s3".into(),
                )
            })?;
            let secret =
                std::fs::read_to_string(secret_file).map_err(|source| DataPlaneError::Io {
                    path: secret_file.display().to_string(),
                    source,
                })?;
            BlobBackend::S3 {
                endpoint: need(&data.data_s3_endpoint, "--data-s3-endpoint")?,
                bucket: data.data_s3_bucket.clone(),
                region: data.data_s3_region.clone(),
                access_key_id: need(&data.data_s3_access_key_id, "--data-s3-access-key-id")?,
                secret_access_key: secret.trim().to_owned(),
            }
        }
    })
}

fn private_dir(path: &Path) -> Result<(), DataPlaneError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| DataPlaneError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// A temporary file path deleted on drop (whether or not the file was created).
pub struct TempPath(PathBuf);

impl TempPath {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
