//! The checks both binaries apply to Serre's resources, so the operator and the gateway
//! refuse the same specs with the same messages: [`validate`] (a Sandbox), [`validate_run`]
//! (a TrialRun), image references against a tenant's registries ([`image`], also used by
//! the operator's admission webhook), the syntax of network fields and settings
//! ([`net`]), and the settings the checks read ([`config::BuildConfig`], the operator's
//! build flags). Pure: nothing here talks to the API server.

pub mod config;
pub mod egress;
pub mod image;
pub mod net;
pub mod validate;
pub mod validate_run;
