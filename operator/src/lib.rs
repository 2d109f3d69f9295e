//! Serre operator: per-tenant AI test sandboxes on Kubernetes.
//!
//! Reconcile path for a Sandbox: fetch (watch caches) → [`validate`] → [`admission`]
//! → [`build`] (pure) → apply (server-side apply, one field manager) → status.

pub mod admission;
pub mod build;
pub mod config;
pub mod controller;
pub mod crypto;
pub mod manifests;
pub mod quantity;
pub mod resources;
pub mod server;
pub mod telemetry;
pub mod validate;
