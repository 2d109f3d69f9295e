//! Signing in: the device flow (`device.rs`), the token store (`store.rs`), and which token
//! a command sends.

pub mod device;
pub mod store;

use anyhow::Result;

use crate::error::Failure;
use store::{Store, TokenSet};

/// Refresh an access token this close to its expiry (seconds).
const REFRESH_MARGIN_S: i64 = 30;

/// The message of a command that needs a sign-in and has none.
pub const SIGN_IN_HINT: &str = "run `serre login --issuer URL` (or set SERRE_TOKEN / pass --token)";

/// The access token to send: `--token`/`SERRE_TOKEN`, else the signed-in issuer's, refreshed
/// when it is about to expire.
pub async fn access_token(
    explicit: Option<&str>,
    store: &Store,
    http: &reqwest::Client,
) -> Result<String> {
    if let Some(t) = explicit.filter(|t| !t.trim().is_empty()) {
        return Ok(t.trim().to_owned());
    }
    let settings = store.settings()?;
    let Some(issuer) = settings.issuer else {
        return Err(Failure::Auth(format!("not signed in: {SIGN_IN_HINT}")).into());
    };
    let Some(tokens) = store.tokens(&issuer)? else {
        return Err(Failure::Auth(format!("not signed in to {issuer}: {SIGN_IN_HINT}")).into());
    };
    fresh(tokens, store, http).await
}

async fn fresh(tokens: TokenSet, store: &Store, http: &reqwest::Client) -> Result<String> {
    let now = chrono::Utc::now().timestamp();
    if !tokens.expires_within(now, REFRESH_MARGIN_S) {
        return Ok(tokens.access_token);
    }
    match device::refresh(http, &tokens).await? {
        Some(t) => {
            store.save_tokens(&t)?;
            Ok(t.access_token)
        }
        None => Err(Failure::Auth(format!(
            "the sign-in to {} expired: run `serre login` again",
            tokens.issuer
        ))
        .into()),
    }
}
