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
pub mod datasets;
pub mod error;
pub mod grants;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod node_agent;
pub mod runs;
pub mod sandboxes;
pub mod store;
pub mod tenants;
pub mod usage;

/// The energy accounting library (crate `serre-energy`, `api/energy/`), under the path the
/// gateway's modules, benches and tests have always used.
pub use serre_energy as energy;

/// The data engine (crate `serre-engine`, `api/engine/`), under the path the gateway's
/// modules, benches, fuzz targets and tests have always used.
pub use serre_engine as data;

/// Select rustls' ring provider for TLS clients (reqwest to the identity provider),
/// once per process; harmless if a provider is already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
