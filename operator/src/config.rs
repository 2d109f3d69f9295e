//! Operator configuration: every setting is a CLI flag with an environment variable
//! and a default, so the binary starts with nothing but a kubeconfig. What shapes the
//! built objects ([`BuildConfig`]) lives in `serre-validation`, which the gateway shares.

use std::net::SocketAddr;
use std::time::Duration;

#[cfg(test)]
pub(crate) use serre_validation::config::test_build_config;
pub use serre_validation::config::{BuildConfig, parse_duration};

/// Settings of the running process.
#[derive(Clone, Debug, clap::Args)]
pub struct RuntimeConfig {
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoints.
    #[arg(long, env = "SERRE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Take a Lease before reconciling, so only one replica acts at a time.
    #[arg(long, env = "SERRE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Namespace of the leader Lease and of Events about cluster-scoped objects.
    #[arg(long, env = "SERRE_NAMESPACE", default_value = "serre-system")]
    pub namespace: String,

    /// Name of the leader Lease.
    #[arg(
        long,
        env = "SERRE_LEASE_NAME",
        default_value = "serre-operator-leader"
    )]
    pub lease_name: String,

    /// How long a Lease stays valid without renewal; a new leader waits at most this long.
    #[arg(long, env = "SERRE_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// Identity written into the Lease (defaults to the host name).
    #[arg(long, env = "SERRE_IDENTITY")]
    pub identity: Option<String>,

    /// Sandboxes reconciled at the same time.
    #[arg(long, env = "SERRE_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Interval of the full resync (every object reconciled again even without change).
    #[arg(long, env = "SERRE_RESYNC", default_value = "10m", value_parser = parse_duration)]
    pub resync: Duration,
}
