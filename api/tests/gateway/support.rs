//! What each module's `mod support;` loads: the binary's one harness (`crate::support`,
//! `api/tests/support/`), re-exported, so that all modules share its state (scratch
//! directory, unique names, the services it starts) instead of each holding a copy.

#[allow(unused_imports)]
pub use crate::support::*;
