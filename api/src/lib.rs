//! Serre gateway: OIDC sign-in, Cedar authorization, self-service sandbox requests with
//! approval, and a hash-chained audit log.

pub mod app;
pub mod audit;
pub mod authz;
pub mod blobs;
pub mod catalogue;
pub mod cluster;
pub mod config;
pub mod console;
pub mod data;
pub mod datasets;
pub mod energy;
pub mod error;
pub mod grants;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod runs;
pub mod sandboxes;
pub mod store;
pub mod tenants;
pub mod usage;

/// Select rustls' ring provider for TLS clients (reqwest to the identity provider),
/// once per process; harmless if a provider is already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
