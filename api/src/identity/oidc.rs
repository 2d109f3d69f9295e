//! OpenID Connect discovery and a cached JWKS, refreshed when a token names an unknown
//! `kid` (at most once per `min_refresh`) or when the cache is older than `max_age`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::{AuthError, VerifyingKey};

#[derive(Default)]
struct State {
    jwks_uri: Option<String>,
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    without_kid: Vec<Arc<VerifyingKey>>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// The keys of one remote issuer.
pub struct RemoteKeys {
    issuer: String,
    http: reqwest::Client,
    min_refresh: Duration,
    max_age: Duration,
    state: RwLock<State>,
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

impl RemoteKeys {
    pub fn new(
        issuer: String,
        http_timeout: Duration,
        min_refresh: Duration,
        max_age: Duration,
    ) -> Result<Self, String> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            issuer,
            http,
            min_refresh,
            max_age,
            state: RwLock::new(State::default()),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn has_keys(&self) -> bool {
        self.state
            .read()
            .map(|s| s.fetched_at.is_some())
            .unwrap_or(false)
    }

    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        let Ok(state) = self.state.read() else {
            return Lookup::Missing;
        };
        let stale = state.fetched_at.is_none_or(|t| t.elapsed() > self.max_age);
        let found = match kid {
            Some(kid) => state.by_kid.get(kid).filter(|k| k.accepts(alg)).cloned(),
            // Without a kid, only an unambiguous key will do.
            None => {
                let mut candidates = state
                    .by_kid
                    .values()
                    .chain(state.without_kid.iter())
                    .filter(|k| k.accepts(alg));
                match (candidates.next(), candidates.next()) {
                    (Some(k), None) => Some(k.clone()),
                    _ => None,
                }
            }
        };
        match found {
            Some(k) if !stale => Lookup::Found(k),
            Some(k) => Lookup::Stale(k),
            None => Lookup::Missing,
        }
    }

    fn may_fetch_now(&self) -> bool {
        self.state
            .read()
            .map(|s| {
                s.last_attempt
                    .is_none_or(|t| t.elapsed() >= self.min_refresh)
            })
            .unwrap_or(false)
    }

    /// The key for a token's `kid` and `alg`, fetching the JWKS when needed.
    pub async fn find(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, AuthError> {
        let unknown = || AuthError::UnknownKey(kid.unwrap_or_default().to_owned());
        match self.lookup(kid, alg) {
            Lookup::Found(k) => return Ok(k),
            Lookup::Stale(k) => {
                // Refresh in passing; a stale key still verifies if the provider is down.
                if self.may_fetch_now() {
                    let _ = self.refresh_once().await;
                }
                return Ok(match self.lookup(kid, alg) {
                    Lookup::Found(k) | Lookup::Stale(k) => k,
                    Lookup::Missing => k,
                });
            }
            Lookup::Missing => {}
        }
        if !self.may_fetch_now() {
            return if self.has_keys() {
                Err(unknown())
            } else {
                Err(AuthError::ProviderUnavailable(
                    "no key set fetched yet".into(),
                ))
            };
        }
        if let Err(e) = self.refresh_once().await {
            if !self.has_keys() {
                return Err(AuthError::ProviderUnavailable(e));
            }
            tracing::warn!(issuer = %self.issuer, error = %e, "JWKS refresh failed");
        }
        match self.lookup(kid, alg) {
            Lookup::Found(k) | Lookup::Stale(k) => Ok(k),
            Lookup::Missing => Err(unknown()),
        }
    }

    /// Fetch discovery (if needed) and the JWKS; concurrent callers share one fetch.
    pub async fn refresh_once(&self) -> Result<(), String> {
        let started = Instant::now();
        let _guard = self.refresh.lock().await;
        // Someone else fetched while we waited.
        if let Ok(s) = self.state.read()
            && s.last_attempt.is_some_and(|t| t >= started)
        {
            return Ok(());
        }
        if let Ok(mut s) = self.state.write() {
            s.last_attempt = Some(Instant::now());
        }
        let result = self.fetch().await;
        match result {
            Ok((jwks_uri, by_kid, without_kid)) => {
                let count = by_kid.len() + without_kid.len();
                if let Ok(mut s) = self.state.write() {
                    s.jwks_uri = Some(jwks_uri);
                    s.by_kid = by_kid;
                    s.without_kid = without_kid;
                    s.fetched_at = Some(Instant::now());
                }
                tracing::info!(issuer = %self.issuer, keys = count, "JWKS fetched");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    #[allow(clippy::type_complexity)]
    async fn fetch(
        &self,
    ) -> Result<
        (
            String,
            HashMap<String, Arc<VerifyingKey>>,
            Vec<Arc<VerifyingKey>>,
        ),
        String,
    > {
        let known_uri = self.state.read().ok().and_then(|s| s.jwks_uri.clone());
        let jwks_uri = match known_uri {
            Some(u) => u,
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let d: Discovery = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| format!("discovery at {url}: {e}"))?
                    .json()
                    .await
                    .map_err(|e| format!("discovery at {url}: {e}"))?;
                if d.issuer != self.issuer {
                    return Err(format!(
                        "discovery at {url} names issuer {:?}, expected {:?}",
                        d.issuer, self.issuer
                    ));
                }
                d.jwks_uri
            }
        };
        let raw: RawJwks = self
            .http
            .get(&jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("JWKS at {jwks_uri}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("JWKS at {jwks_uri}: {e}"))?;
        let mut by_kid = HashMap::new();
        let mut without_kid = Vec::new();
        for value in raw.keys {
            // Keys of unknown types are skipped, not fatal.
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if let Some(key) = verifying_key(&jwk) {
                match jwk.common.key_id.clone() {
                    Some(kid) => {
                        by_kid.insert(kid, Arc::new(key));
                    }
                    None => without_kid.push(Arc::new(key)),
                }
            }
        }
        Ok((jwks_uri, by_kid, without_kid))
    }
}

enum Lookup {
    Found(Arc<VerifyingKey>),
    Stale(Arc<VerifyingKey>),
    Missing,
}

/// A signing key from a JWK; encryption keys and symmetric keys are ignored.
pub fn verifying_key(jwk: &Jwk) -> Option<VerifyingKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    let family = key.family();
    if family == jsonwebtoken::AlgorithmFamily::Hmac {
        return None;
    }
    let alg = match &jwk.common.key_algorithm {
        None => None,
        Some(ka) => {
            let name = serde_json::to_value(ka).ok()?;
            Some(Algorithm::from_str(name.as_str()?).ok()?)
        }
    };
    Some(VerifyingKey { key, family, alg })
}
