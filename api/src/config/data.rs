//! Flags of the data plane: where dataset bytes are stored, the keys, the ingest limits.

use std::path::PathBuf;
use std::time::Duration;

use super::parse_duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DataStoreKind {
    /// Encrypted files under `<data-dir>/datasets` (embedded, development).
    Local,
    /// Encrypted objects in an S3 bucket (Garage in production).
    S3,
}

#[derive(Clone, Debug, clap::Args)]
pub struct DataConfig {
    /// Where dataset bytes are stored (always encrypted client-side).
    #[arg(
        long,
        env = "SERRE_API_DATA_STORE",
        value_enum,
        default_value = "local"
    )]
    pub data_store: DataStoreKind,

    /// S3 endpoint of the data store (e.g. Garage's `http://127.0.0.1:3900`).
    #[arg(long, env = "SERRE_API_DATA_S3_ENDPOINT")]
    pub data_s3_endpoint: Option<String>,

    #[arg(
        long,
        env = "SERRE_API_DATA_S3_BUCKET",
        default_value = "serre-datasets"
    )]
    pub data_s3_bucket: String,

    #[arg(long, env = "SERRE_API_DATA_S3_REGION", default_value = "garage")]
    pub data_s3_region: String,

    #[arg(long, env = "SERRE_API_DATA_S3_ACCESS_KEY_ID")]
    pub data_s3_access_key_id: Option<String>,

    /// File holding the S3 secret access key.
    #[arg(long, env = "SERRE_API_DATA_S3_SECRET_KEY_FILE")]
    pub data_s3_secret_key_file: Option<PathBuf>,

    /// Directory of the data keys (`kek-active`, `kek.<id>`, `data-secret`; a mounted
    /// Secret in Kubernetes). Default `<data-dir>/keys`, created in development only.
    #[arg(long, env = "SERRE_API_DATA_KEYS_DIR")]
    pub data_keys_dir: Option<PathBuf>,

    /// Largest dataset upload, in bytes (larger bodies get 413 and leave nothing).
    #[arg(long, env = "SERRE_API_UPLOAD_LIMIT", default_value_t = 2 << 30)]
    pub upload_limit: u64,

    /// Time allowed for one upload or one grant's materialisation.
    #[arg(long, env = "SERRE_API_UPLOAD_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub upload_timeout: Duration,

    /// Largest file a trial run may send to its results
    /// (`PUT /v1/runs/{run}/results/{path}`, streamed to the sandbox bucket), in bytes:
    /// larger bodies get 413 and leave nothing. The sandbox's bucket quota bounds the total.
    #[arg(long, env = "SERRE_API_MAX_RUN_RESULT_BYTES", default_value_t = 1 << 30)]
    pub max_run_result_bytes: u64,

    /// Most rows in one dataset version.
    #[arg(long, env = "SERRE_API_MAX_ROWS", default_value_t = 1_000_000_000)]
    pub max_rows: u64,

    /// Bytes one upload's ingest may hold at once, in bytes, whatever the file's
    /// compression: half for the Parquet pages decoded at once, a quarter for a decoded
    /// batch, a quarter for the output row group. A file that needs more is refused (422
    /// `too_large`, naming the row group, the rows or the column, and the figures).
    #[arg(long, env = "SERRE_API_MAX_INGEST_MEMORY", default_value_t = 128 << 20)]
    pub max_ingest_memory: u64,

    /// Longest CSV field, in bytes (422 `too_large` naming the line and the column).
    #[arg(long, env = "SERRE_API_MAX_CSV_FIELD", default_value_t = 1 << 20)]
    pub max_csv_field: u64,

    /// Longest CSV record, in bytes (at most an eighth of `--max-ingest-memory`).
    #[arg(long, env = "SERRE_API_MAX_CSV_RECORD", default_value_t = 4 << 20)]
    pub max_csv_record: u64,

    /// Uploads ingested at once (parsed and converted, each on its own thread); more wait
    /// for `--ingest-queue-wait` once their body is received.
    #[arg(long, env = "SERRE_API_MAX_CONCURRENT_INGESTS", default_value_t = 2)]
    pub max_concurrent_ingests: usize,

    /// How long a received upload waits for an ingest to finish before it is refused with
    /// 503 and `Retry-After`.
    #[arg(long, env = "SERRE_API_INGEST_QUEUE_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub ingest_queue_wait: Duration,

    /// Smallest equivalence class a `personal` dataset's view must reach (k-anonymity over
    /// the recipe's quasi-identifiers) before it is granted to a vendor.
    #[arg(long, env = "SERRE_API_MIN_K", default_value_t = 5)]
    pub min_k: u32,

    /// Longest lifetime of a grant, in days.
    #[arg(long, env = "SERRE_API_MAX_GRANT_DAYS", default_value_t = 90)]
    pub max_grant_days: u32,

    /// Lifetime of a Delta Sharing profile token (capped by the grant's expiry).
    #[arg(long, env = "SERRE_API_PROFILE_TTL", default_value = "24h", value_parser = parse_duration)]
    pub profile_ttl: Duration,

    /// Lifetime of a pre-signed file link returned by a Delta Sharing query.
    #[arg(long, env = "SERRE_API_FILE_LINK_TTL", default_value = "15m", value_parser = parse_duration)]
    pub file_link_ttl: Duration,

    /// The gateway's URL as clients reach it (profile endpoints and file links).
    /// Default: `http://<listen>`.
    #[arg(long, env = "SERRE_API_PUBLIC_URL")]
    pub public_url: Option<String>,
}

impl DataConfig {
    /// The ingest limits fit together: the flag at fault and why.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        const MIB: u64 = 1 << 20;
        if self.max_ingest_memory < 16 * MIB {
            return Err((
                "--max-ingest-memory",
                "must be at least 16 MiB (16777216)".into(),
            ));
        }
        if self.max_csv_field < 1024 || self.max_csv_field > self.max_csv_record {
            return Err((
                "--max-csv-field",
                "must be at least 1024 bytes and at most --max-csv-record".into(),
            ));
        }
        if self.max_csv_record > self.max_ingest_memory / 8 {
            return Err((
                "--max-csv-record",
                format!(
                    "must be at most an eighth of --max-ingest-memory ({} bytes)",
                    self.max_ingest_memory / 8
                ),
            ));
        }
        if self.max_concurrent_ingests == 0 {
            return Err(("--max-concurrent-ingests", "must be at least 1".into()));
        }
        Ok(())
    }
}
