//! Renewing a session whose access token lapsed, with the provider's refresh token: the
//! session extractor (`pages.rs`) calls [`renew`]; the renewed cookie goes out with that
//! request's response through the [`Renewal`] slot that `renewed_cookie` (`mod.rs`) puts
//! in every console request.

use chrono::Utc;

use super::WebState;
use super::session::{SESSION_COOKIE, Session, set_cookie};

/// Where the session extractor leaves a renewed session cookie for the response (see
/// `renewed_cookie` in `console/mod.rs`, which puts one in every console request).
#[derive(Clone, Default)]
pub struct Renewal(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl Renewal {
    fn put(&self, cookie: String) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(cookie);
        }
    }

    /// The `Set-Cookie` value left by the extractor, if any.
    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// Renew a session whose access token lapsed: a new access token from the refresh token,
/// verified like any other; the session keeps its CSRF token and its end. `None` (the
/// person signs in again) when the provider refuses or the new token does not verify.
pub(super) async fn renew(
    app: &WebState,
    session: &Session,
    secure: bool,
    renewal: Option<&Renewal>,
) -> Option<crate::identity::Principal> {
    let signin = app.console.signin.as_ref()?;
    let refresh_token = session.refresh_token.as_deref()?;
    let tokens = match signin.refresh(refresh_token).await {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(error = %e, "console session not renewed");
            return None;
        }
    };
    let principal = match app
        .verifier
        .verify_header(Some(&format!("Bearer {}", tokens.access_token)))
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(code = e.code(), "console session: renewed token refused");
            return None;
        }
    };
    let renewed = Session {
        access_token: tokens.access_token,
        csrf: session.csrf.clone(),
        expires: session.expires,
        refresh_token: tokens
            .refresh_token
            .or_else(|| session.refresh_token.clone()),
        id_token: tokens.id_token.or_else(|| session.id_token.clone()),
    };
    let max_age = session.expires - Utc::now().timestamp();
    if let Some(r) = renewal {
        r.put(set_cookie(
            SESSION_COOKIE,
            &app.console.sealer.seal(SESSION_COOKIE, &renewed),
            max_age,
            secure,
        ));
    }
    tracing::info!(subject = %principal.subject, "console session renewed");
    Some(principal)
}
