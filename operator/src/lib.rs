//! Serre operator: per-tenant AI test sandboxes on Kubernetes.
//!
//! Reconcile path for a Sandbox: fetch (watch caches) → [`validate`] → [`admission`]
//! → [`build`] (pure) → apply (server-side apply, one field manager) → status.
//! A TrialRun follows the same path: [`validate_run`] → [`build::job`] → a Job.
//! On every replica, [`webhook`] serves the sandbox policy admission webhook.

pub mod admission;
pub mod build;
pub mod config;
pub mod controller;
pub mod manifests;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod webhook;

// Shared with the gateway, which depends on these crates and not on this one; re-exported
// under their former module names so the operator's paths stay as they were.
pub use serre_crypto as crypto;
pub use serre_resources as resources;
pub use serre_resources::quantity;
pub use serre_validation::{validate, validate_run};

/// Select rustls' ring provider once per process (several TLS stacks in the tree
/// enable different providers, so none is chosen automatically).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
