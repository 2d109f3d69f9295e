//! Serre operator: per-tenant AI test sandboxes on Kubernetes.
//!
//! Reconcile path for a Sandbox: fetch (watch caches) → [`validate`] → [`admission`]
//! → [`build`] (pure) → apply (server-side apply, one field manager) → status.
//! A TrialRun follows the same path: [`validate_run`] → [`build::job`] → a Job.

pub mod admission;
pub mod build;
pub mod config;
pub mod controller;
pub mod crypto;
pub mod manifests;
pub mod quantity;
pub mod resources;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod validate;
pub mod validate_run;

/// Select rustls' ring provider once per process (several TLS stacks in the tree
/// enable different providers, so none is chosen automatically).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
