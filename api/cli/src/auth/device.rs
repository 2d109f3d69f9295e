//! OpenID Connect discovery, the device authorization grant (RFC 8628) and the refresh of
//! tokens, against any provider (Keycloak, ProConnect, the development provider…).

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::store::TokenSet;
use crate::client::network;
use crate::error::Failure;

/// The endpoints `serre` needs from `<issuer>/.well-known/openid-configuration`.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub token_endpoint: String,
    pub device_authorization_endpoint: Option<String>,
}

pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Discovery> {
    let issuer = issuer.trim_end_matches('/');
    let url = format!("{issuer}/.well-known/openid-configuration");
    let resp = http.get(&url).send().await.map_err(|e| network(&url, e))?;
    if !resp.status().is_success() {
        return Err(Failure::Auth(format!(
            "{url} answered {}: is {issuer} an OpenID provider?",
            resp.status()
        ))
        .into());
    }
    let d: Discovery = resp
        .json()
        .await
        .map_err(|e| Failure::Auth(format!("{url}: not an OpenID configuration: {e}")))?;
    if d.issuer.trim_end_matches('/') != issuer {
        return Err(Failure::Auth(format!(
            "{url} names the issuer {:?}, not {issuer:?}",
            d.issuer
        ))
        .into());
    }
    Ok(d)
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    /// Seconds between polls (5 when absent, §3.2).
    pub interval: Option<u64>,
}

/// A successful token response.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<i64>,
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug, Clone, Deserialize)]
pub struct OAuthError {
    pub error: String,
    pub error_description: Option<String>,
}

impl OAuthError {
    fn describe(&self) -> String {
        match &self.error_description {
            Some(d) => format!("{} ({d})", self.error),
            None => self.error.clone(),
        }
    }
}

/// What to do after one poll of the token endpoint (RFC 8628 §3.5).
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    /// Poll again after this interval.
    Wait(Duration),
    /// Stop: the sign-in failed, with this message.
    Fail(String),
}

/// The next step after a token error, given the current interval.
pub fn after_error(err: &OAuthError, interval: Duration) -> Poll {
    match err.error.as_str() {
        "authorization_pending" => Poll::Wait(interval),
        // §3.5: increase the interval by 5 seconds for this and all later requests.
        "slow_down" => Poll::Wait(interval + Duration::from_secs(5)),
        "expired_token" => Poll::Fail(
            "the code expired before the sign-in was completed: run `serre login` again".into(),
        ),
        "access_denied" => Poll::Fail("the sign-in was refused in the browser".into()),
        _ => Poll::Fail(format!(
            "the provider refused the sign-in: {}",
            err.describe()
        )),
    }
}

/// Ask for a device code.
pub async fn authorize(
    http: &reqwest::Client,
    d: &Discovery,
    client_id: &str,
    scope: &str,
    resource: Option<&str>,
) -> Result<DeviceAuthorization> {
    let Some(endpoint) = &d.device_authorization_endpoint else {
        return Err(Failure::Auth(format!(
            "{} offers no device authorization endpoint: the provider must enable the device \
             flow (RFC 8628) for client {client_id:?}; otherwise use --token or SERRE_TOKEN",
            d.issuer
        ))
        .into());
    };
    let mut form = vec![("client_id", client_id), ("scope", scope)];
    if let Some(r) = resource {
        form.push(("resource", r));
    }
    let resp = http
        .post(endpoint)
        .form(&form)
        .send()
        .await
        .map_err(|e| network(endpoint, e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| network(endpoint, e))?;
    if !status.is_success() {
        let why = serde_json::from_slice::<OAuthError>(&body)
            .map(|e| e.describe())
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        return Err(Failure::Auth(format!(
            "the provider refused to start a device sign-in for client {client_id:?}: {why}"
        ))
        .into());
    }
    serde_json::from_slice(&body)
        .with_context(|| format!("{endpoint}: not a device authorization response"))
}

/// One request to the token endpoint: the tokens, or the provider's OAuth error.
async fn token_request(
    http: &reqwest::Client,
    endpoint: &str,
    form: &[(&str, &str)],
) -> Result<std::result::Result<TokenResponse, OAuthError>> {
    let resp = http
        .post(endpoint)
        .form(form)
        .send()
        .await
        .map_err(|e| network(endpoint, e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| network(endpoint, e))?;
    if status.is_success() {
        let t = serde_json::from_slice(&body)
            .with_context(|| format!("{endpoint}: not a token response"))?;
        return Ok(Ok(t));
    }
    match serde_json::from_slice::<OAuthError>(&body) {
        Ok(e) => Ok(Err(e)),
        Err(_) => Err(Failure::Auth(format!(
            "{endpoint} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ))
        .into()),
    }
}

fn token_set(
    d: &Discovery,
    client_id: &str,
    t: TokenResponse,
    old_refresh: Option<String>,
) -> TokenSet {
    TokenSet {
        issuer: d.issuer.trim_end_matches('/').to_owned(),
        client_id: client_id.to_owned(),
        token_endpoint: d.token_endpoint.clone(),
        access_token: t.access_token,
        // A provider that does not rotate refresh tokens keeps the old one valid.
        refresh_token: t.refresh_token.or(old_refresh),
        expires_at: t.expires_in.map(|s| chrono::Utc::now().timestamp() + s),
    }
}

/// Poll the token endpoint until the person signs in, refuses, or the code expires.
pub async fn poll(
    http: &reqwest::Client,
    d: &Discovery,
    client_id: &str,
    auth: &DeviceAuthorization,
) -> Result<TokenSet> {
    let mut interval = Duration::from_secs(auth.interval.unwrap_or(5).max(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(auth.expires_in);
    loop {
        tokio::time::sleep(interval).await;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", auth.device_code.as_str()),
            ("client_id", client_id),
        ];
        match token_request(http, &d.token_endpoint, &form).await? {
            Ok(t) => return Ok(token_set(d, client_id, t, None)),
            Err(e) => match after_error(&e, interval) {
                Poll::Wait(next) => interval = next,
                Poll::Fail(msg) => return Err(Failure::Auth(msg).into()),
            },
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::Auth(
                "the code expired before the sign-in was completed: run `serre login` again".into(),
            )
            .into());
        }
    }
}

/// New tokens from a refresh token; `Ok(None)` when the provider no longer accepts it.
pub async fn refresh(http: &reqwest::Client, old: &TokenSet) -> Result<Option<TokenSet>> {
    let Some(rt) = old.refresh_token.clone() else {
        return Ok(None);
    };
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", old.client_id.as_str()),
    ];
    match token_request(http, &old.token_endpoint, &form).await? {
        Ok(t) => {
            let d = Discovery {
                issuer: old.issuer.clone(),
                token_endpoint: old.token_endpoint.clone(),
                device_authorization_endpoint: None,
            };
            Ok(Some(token_set(&d, &old.client_id, t, Some(rt))))
        }
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: &str) -> OAuthError {
        OAuthError {
            error: code.into(),
            error_description: None,
        }
    }

    #[test]
    fn polling_follows_rfc_8628() {
        let five = Duration::from_secs(5);
        assert_eq!(
            after_error(&err("authorization_pending"), five),
            Poll::Wait(five)
        );
        assert_eq!(
            after_error(&err("slow_down"), five),
            Poll::Wait(Duration::from_secs(10))
        );
        assert!(
            matches!(after_error(&err("expired_token"), five), Poll::Fail(m) if m.contains("expired"))
        );
        assert!(
            matches!(after_error(&err("access_denied"), five), Poll::Fail(m) if m.contains("refused"))
        );
        let other = OAuthError {
            error: "invalid_grant".into(),
            error_description: Some("grant request is invalid".into()),
        };
        assert!(
            matches!(after_error(&other, five), Poll::Fail(m) if m.contains("invalid_grant (grant request is invalid)"))
        );
    }
}
