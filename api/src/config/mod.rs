//! Gateway configuration: every setting is a CLI flag with an environment variable and a
//! default; the one secret (the database URL, which may carry a password) can also come
//! from a file. No global state: the parsed [`Config`] is passed down explicitly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod console;
mod data;
mod oidc;
mod usage;

pub use console::ConsoleConfig;
pub use data::{DataConfig, DataStoreKind};
pub use oidc::{OidcConfig, parse_allowed_algorithm};
pub use usage::UsageConfig;

/// Where the gateway runs. `production` refuses development conveniences.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    Production,
    Development,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{flag}: {message}")]
    Invalid { flag: &'static str, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn invalid(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        message: message.into(),
    }
}

/// Everything `serre-api serve` needs.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "SERRE_API_LISTEN", default_value = "127.0.0.1:15480")]
    pub listen: SocketAddr,

    /// Address serving `/metrics` on its own (e.g. `0.0.0.0:9090`), so that the public API
    /// port does not expose it. Unset: `/metrics` is served on `--listen`.
    #[arg(long, env = "SERRE_API_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// `production` refuses the development issuer and plain-HTTP identity providers
    /// outside loopback.
    #[arg(
        long,
        env = "SERRE_API_ENVIRONMENT",
        value_enum,
        default_value = "production"
    )]
    pub environment: Environment,

    /// Directory for the embedded SQLite database and the development issuer's key.
    #[arg(long, env = "SERRE_API_DATA_DIR", default_value = ".serre/api")]
    pub data_dir: PathBuf,

    #[command(flatten)]
    pub database: DatabaseConfig,

    /// Directory holding the Cedar policies (`*.cedar`) and schema (`*.cedarschema`).
    #[arg(long, env = "SERRE_API_POLICIES_DIR", default_value = "policies")]
    pub policies_dir: PathBuf,

    #[command(flatten)]
    pub oidc: OidcConfig,

    /// Trust tokens minted by `serre-api dev-token` (development environment only).
    #[arg(long, env = "SERRE_API_DEV_ISSUER", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub dev_issuer: bool,

    /// Groups whose members are Métropole admins, in addition to the admin groups of
    /// every Tenant of kind `Metropole` (comma-separated).
    #[arg(long, env = "SERRE_API_METROPOLE_ADMIN_GROUPS", value_delimiter = ',')]
    pub metropole_admin_groups: Vec<String>,

    #[command(flatten)]
    pub cluster: ClusterConfig,

    #[command(flatten)]
    pub sandboxes: SandboxConfig,

    #[command(flatten)]
    pub data: DataConfig,

    #[command(flatten)]
    pub usage: UsageConfig,

    #[command(flatten)]
    pub console: ConsoleConfig,

    /// How often the audit log's head is signed and published to the object store when it
    /// has moved (`audit-checkpoints/`): entries deleted from the database's tail after
    /// the last checkpoint go unnoticed, so this bounds what a truncation can hide.
    #[arg(long, env = "SERRE_API_AUDIT_CHECKPOINT_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub audit_checkpoint_interval: Duration,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "SERRE_API_BODY_LIMIT", default_value_t = 65_536)]
    pub body_limit: usize,

    /// Longest time a request may take before it is answered 503.
    #[arg(long, env = "SERRE_API_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// How long shutdown waits for requests in flight before giving up.
    #[arg(long, env = "SERRE_API_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

#[derive(Clone, Debug, clap::Args)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`. Default: SQLite in the data directory.
    #[arg(long, env = "SERRE_API_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// File holding the database URL (for URLs carrying a password).
    #[arg(
        long,
        env = "SERRE_API_DATABASE_URL_FILE",
        conflicts_with = "database_url"
    )]
    pub database_url_file: Option<PathBuf>,

    /// Connections in the pool.
    #[arg(long, env = "SERRE_API_DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,
}

#[derive(Clone, Debug, clap::Args)]
pub struct ClusterConfig {
    /// Run without a Kubernetes cluster: requests are stored and shown as waiting for a
    /// cluster; tenants come from `--tenants-file`.
    #[arg(long, env = "SERRE_API_NO_CLUSTER", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub no_cluster: bool,

    /// Kubeconfig file (default: `KUBECONFIG`, `~/.kube/config`, or in-cluster).
    #[arg(long, env = "SERRE_API_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// YAML file of `Tenant` manifests used instead of the cluster's Tenants.
    #[arg(long, env = "SERRE_API_TENANTS_FILE")]
    pub tenants_file: Option<PathBuf>,

    /// Interval between two passes that push approved requests to the cluster.
    #[arg(long, env = "SERRE_API_PUSH_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub push_interval: Duration,
}

#[derive(Clone, Debug, clap::Args)]
pub struct SandboxConfig {
    /// Longest lifetime a sandbox may ask for (the operator's maximum).
    #[arg(long, env = "SERRE_API_MAX_LIFETIME", default_value = "90d", value_parser = parse_duration)]
    pub max_lifetime: Duration,

    /// Self-service limit for tenants without their own policy: longest lifetime in days
    /// created without approval.
    #[arg(long, env = "SERRE_API_SELF_SERVICE_MAX_DAYS", default_value_t = 30)]
    pub self_service_max_days: u32,

    /// Self-service limit for tenants without their own policy: whether GPUs are
    /// granted without approval.
    #[arg(long, env = "SERRE_API_SELF_SERVICE_ALLOW_GPU", default_value_t = false, action = clap::ArgAction::Set)]
    pub self_service_allow_gpu: bool,

    /// GPU resource names the cluster offers (comma-separated).
    #[arg(
        long,
        env = "SERRE_API_GPU_RESOURCES",
        value_delimiter = ',',
        default_value = "nvidia.com/gpu"
    )]
    pub gpu_resources: Vec<String>,

    /// What a sandbox may ask to reach as extra egress, and what a tenant admin may
    /// approve (the operator's own flags, shared: both refuse the same CIDRs).
    #[command(flatten)]
    pub egress: serre_validation::egress::EgressRules,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected e.g. \"30s\", \"10m\", \"90d\")"))
}

impl Config {
    /// Check what clap cannot check alone; the message names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.environment == Environment::Production && self.dev_issuer {
            return Err(invalid(
                "--dev-issuer",
                "the development issuer is refused in production (set --environment development)",
            ));
        }
        self.usage
            .check()
            .map_err(|(flag, message)| invalid(flag, message))?;
        if self.oidc.oidc_issuer.is_none() && !self.dev_issuer {
            return Err(invalid(
                "--oidc-issuer",
                "no identity provider: set an OIDC issuer (or --dev-issuer in development)",
            ));
        }
        if let Some(issuer) = &self.oidc.oidc_issuer {
            let url = reqwest::Url::parse(issuer)
                .map_err(|e| invalid("--oidc-issuer", format!("{issuer:?}: {e}")))?;
            let loopback = matches!(
                url.host_str(),
                Some("localhost") | Some("127.0.0.1") | Some("[::1]")
            );
            match url.scheme() {
                "https" => {}
                "http" if loopback => {}
                _ => {
                    return Err(invalid(
                        "--oidc-issuer",
                        format!("{issuer:?} must use https (plain http only on loopback)"),
                    ));
                }
            }
        }
        for alg in &self.oidc.oidc_algorithms {
            parse_allowed_algorithm(alg).map_err(|m| invalid("--oidc-algorithms", m))?;
        }
        if self.oidc.oidc_subject_claim.is_empty() {
            return Err(invalid("--oidc-subject-claim", "must not be empty"));
        }
        if self.sandboxes.max_lifetime.is_zero() {
            return Err(invalid("--max-lifetime", "must be more than zero"));
        }
        let max_days = self.sandboxes.max_lifetime.as_secs() / 86_400;
        if u64::from(self.sandboxes.self_service_max_days) > max_days {
            return Err(invalid(
                "--self-service-max-days",
                format!("is above --max-lifetime ({max_days} days)"),
            ));
        }
        self.sandboxes
            .egress
            .validate()
            .map_err(|m| invalid("extra egress", m))?;
        if self.body_limit < 1024 {
            return Err(invalid("--body-limit", "must be at least 1024 bytes"));
        }
        self.data
            .check()
            .map_err(|(flag, message)| invalid(flag, message))?;
        if self.cluster.no_cluster && self.cluster.tenants_file.is_none() {
            return Err(invalid(
                "--no-cluster",
                "without a cluster, tenants must come from --tenants-file",
            ));
        }
        Ok(())
    }

    /// The database URL: the flag, the file, or SQLite under the data directory.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        if let Some(url) = &self.database.database_url {
            return Ok(url.clone());
        }
        if let Some(path) = &self.database.database_url_file {
            return read_secret(path);
        }
        Ok(format!(
            "sqlite://{}",
            self.data_dir.join("serre-api.db").display()
        ))
    }
}

/// Read a secret from a file, without its trailing newline.
pub fn read_secret(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        c: Config,
    }

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["serre-api"];
        all.extend_from_slice(args);
        P::try_parse_from(all).expect("parse").c
    }

    #[test]
    fn production_refuses_the_dev_issuer() {
        let c = parse(&["--dev-issuer"]);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("--dev-issuer:"), "{e}");
        let c = parse(&["--dev-issuer", "--environment", "development"]);
        c.validate().expect("development accepts it");
    }

    #[test]
    fn an_identity_provider_is_required_and_must_use_https() {
        let e = parse(&[]).validate().unwrap_err().to_string();
        assert!(e.starts_with("--oidc-issuer:"), "{e}");
        let e = parse(&["--oidc-issuer", "http://idp.example.fr"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("must use https"), "{e}");
        parse(&["--oidc-issuer", "http://127.0.0.1:15433"])
            .validate()
            .expect("loopback http is fine");
        parse(&["--oidc-issuer", "https://idp.example.fr/realms/serre"])
            .validate()
            .expect("https is fine");
    }

    #[test]
    fn hmac_and_none_cannot_be_allowed() {
        for alg in ["HS256", "none", "XYZ"] {
            let e = parse(&[
                "--oidc-issuer",
                "https://idp.example.fr",
                "--oidc-algorithms",
                alg,
            ])
            .validate()
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("--oidc-algorithms:"), "{e}");
        }
    }

    #[test]
    fn database_url_defaults_to_sqlite_in_the_data_dir_or_comes_from_a_file() {
        let c = parse(&["--data-dir", "/var/lib/serre"]);
        assert_eq!(
            c.database_url().unwrap(),
            "sqlite:///var/lib/serre/serre-api.db"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("url");
        std::fs::write(&f, "postgres://u:secret@db/serre\n").unwrap();
        let c = parse(&["--database-url-file", f.to_str().unwrap()]);
        assert_eq!(c.database_url().unwrap(), "postgres://u:secret@db/serre");
    }

    #[test]
    fn ingest_limits_must_fit_together() {
        let base = ["--dev-issuer", "--environment", "development"];
        for (extra, flag) in [
            (
                &["--max-ingest-memory", "1000000"][..],
                "--max-ingest-memory:",
            ),
            (&["--max-csv-field", "10"][..], "--max-csv-field:"),
            (
                &["--max-csv-field", "8388608", "--max-csv-record", "4194304"][..],
                "--max-csv-field:",
            ),
            (&["--max-csv-record", "33554432"][..], "--max-csv-record:"),
            (
                &["--max-concurrent-ingests", "0"][..],
                "--max-concurrent-ingests:",
            ),
        ] {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            let e = parse(&args).validate().unwrap_err().to_string();
            assert!(e.starts_with(flag), "{extra:?}: {e}");
        }
        parse(&base).validate().expect("the defaults fit");
    }

    #[test]
    fn self_service_cannot_exceed_the_maximum_lifetime() {
        let e = parse(&[
            "--dev-issuer",
            "--environment",
            "development",
            "--max-lifetime",
            "20d",
        ])
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--self-service-max-days:"), "{e}");
    }
}
