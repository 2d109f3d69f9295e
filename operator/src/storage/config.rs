//! Storage settings of the operator. Storage is on when an admin endpoint is set.

use std::path::PathBuf;

#[derive(Clone, Debug, clap::Args)]
pub struct StorageConfig {
    /// Garage admin API (v2) endpoint, e.g. `http://garage-admin.serre-system:3903`.
    /// Without it, sandboxes get no bucket (the StorageReady condition says so).
    #[arg(long, env = "SERRE_GARAGE_ADMIN_ENDPOINT")]
    pub garage_admin_endpoint: Option<String>,

    /// File holding the Garage admin token (never logged).
    #[arg(long, env = "SERRE_GARAGE_ADMIN_TOKEN_FILE")]
    pub garage_admin_token_file: Option<PathBuf>,

    /// S3 endpoint given to sandboxes (and used by the operator to empty buckets).
    #[arg(
        long,
        env = "SERRE_S3_ENDPOINT",
        default_value = "http://127.0.0.1:3900"
    )]
    pub s3_endpoint: String,

    /// S3 region name of the store.
    #[arg(long, env = "SERRE_S3_REGION", default_value = "garage")]
    pub s3_region: String,

    /// Secret in Serre's namespace holding the KEKs and the certificate signing key.
    #[arg(
        long,
        env = "SERRE_STORAGE_KEYS_SECRET",
        default_value = "serre-storage-keys"
    )]
    pub storage_keys_secret: String,

    /// Secret in Serre's namespace holding every sandbox's wrapped data key (one entry per
    /// sandbox; created by the operator when missing). Its name, like the keys Secret's,
    /// is what the operator's Role may read, by name.
    #[arg(
        long,
        env = "SERRE_STORAGE_DATA_KEYS_SECRET",
        default_value = super::keys::DATA_KEYS_SECRET
    )]
    pub data_keys_secret: String,
}

impl StorageConfig {
    pub fn enabled(&self) -> bool {
        self.garage_admin_endpoint.is_some()
    }

    /// The admin token, read from its file. Errors name the setting.
    pub fn admin_token(&self) -> Result<String, String> {
        let path = self
            .garage_admin_token_file
            .as_ref()
            .ok_or("--garage-admin-token-file (SERRE_GARAGE_ADMIN_TOKEN_FILE) is required with --garage-admin-endpoint")?;
        let token = std::fs::read_to_string(path)
            .map_err(|e| format!("--garage-admin-token-file {}: {e}", path.display()))?;
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err(format!(
                "--garage-admin-token-file {} is empty",
                path.display()
            ));
        }
        Ok(token)
    }
}
