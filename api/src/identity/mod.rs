//! Identity: OpenID Connect bearer tokens verified against trusted issuers.
//!
//! A token is checked in this order, and every failure is a distinct [`AuthError`]:
//! shape → algorithm allowlist (never `none`, never HMAC) → issuer (unverified `iss`
//! picks the trusted issuer) → key (`kid`, refreshing the issuer's JWKS when unknown,
//! rate-limited) → signature → `exp`/`nbf` (with clock skew), `iss`, `aud` → claims.

pub mod cache;
pub mod dev;
pub mod oidc;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::{OidcConfig, parse_allowed_algorithm};
use cache::{TokenCache, Validity};

/// Who is calling, as the identity provider says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub issuer: String,
    pub subject: String,
    pub groups: Vec<String>,
    pub organisation: Option<String>,
}

/// Why a bearer token was refused. Every variant but `ProviderUnavailable` is a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send `Authorization: Bearer <token>`")]
    MissingToken,
    #[error("the Authorization header must use the Bearer scheme")]
    NotBearer,
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the token's algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("the token's issuer {0:?} is not trusted")]
    UntrustedIssuer(String),
    #[error("no key {0:?} in the issuer's key set")]
    UnknownKey(String),
    #[error("the token's signature does not verify")]
    InvalidSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("the token's audience does not include {0:?}")]
    InvalidAudience(String),
    #[error("the token lacks the required claim {0:?}")]
    MissingClaim(String),
    #[error("the token's claim {0:?} has the wrong type")]
    InvalidClaim(String),
    #[error("the identity provider is unavailable: {0}")]
    ProviderUnavailable(String),
}

impl AuthError {
    /// Stable code for error bodies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::NotBearer => "not_bearer",
            AuthError::Malformed(_) => "malformed_token",
            AuthError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            AuthError::UntrustedIssuer(_) => "invalid_issuer",
            AuthError::UnknownKey(_) => "unknown_key",
            AuthError::InvalidSignature => "invalid_signature",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::InvalidAudience(_) => "invalid_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::InvalidClaim(_) => "invalid_claim",
            AuthError::ProviderUnavailable(_) => "identity_provider_unavailable",
        }
    }
}

/// A public key and what it may verify.
pub struct VerifyingKey {
    pub key: DecodingKey,
    pub family: AlgorithmFamily,
    /// The key's own `alg`, when its JWK names one.
    pub alg: Option<Algorithm>,
}

impl VerifyingKey {
    fn accepts(&self, alg: Algorithm) -> bool {
        self.family == alg.family() && self.alg.is_none_or(|a| a == alg)
    }
}

/// Where an issuer's keys come from.
pub enum Keys {
    /// Discovery + JWKS over HTTP, cached.
    Remote(Arc<oidc::RemoteKeys>),
    /// A fixed key (the development issuer).
    Static { kid: String, key: Arc<VerifyingKey> },
}

impl Keys {
    async fn find(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, AuthError> {
        match self {
            Keys::Remote(remote) => remote.find(kid, alg).await,
            Keys::Static { kid: own, key } => match kid {
                Some(k) if k == own && key.accepts(alg) => Ok(key.clone()),
                Some(k) => Err(AuthError::UnknownKey(k.to_owned())),
                None => Err(AuthError::UnknownKey(String::new())),
            },
        }
    }
}

/// One issuer the gateway trusts.
pub struct TrustedIssuer {
    pub issuer: String,
    pub keys: Keys,
}

/// Claim names, which differ between providers (ProConnect, Keycloak, …).
#[derive(Clone, Debug)]
pub struct ClaimNames {
    pub subject: String,
    pub groups: String,
    pub organisation: String,
}

/// Verifies bearer tokens against the trusted issuers.
pub struct Verifier {
    issuers: Vec<TrustedIssuer>,
    algorithms: HashSet<Algorithm>,
    audience: String,
    skew: Duration,
    claims: ClaimNames,
    cache: TokenCache,
}

#[derive(serde::Deserialize)]
struct PeekHeader {
    alg: Option<Value>,
    kid: Option<String>,
}

#[derive(serde::Deserialize)]
struct PeekClaims {
    iss: Option<Value>,
}

fn peek<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed(format!("the {what} is not a JSON object")))
}

impl Verifier {
    pub fn new(issuers: Vec<TrustedIssuer>, oidc: &OidcConfig) -> Result<Self, String> {
        let algorithms = oidc
            .oidc_algorithms
            .iter()
            .map(|a| parse_allowed_algorithm(a))
            .collect::<Result<HashSet<_>, _>>()?;
        Ok(Self {
            issuers,
            algorithms,
            audience: oidc.oidc_audience.clone(),
            skew: oidc.oidc_clock_skew,
            claims: ClaimNames {
                subject: oidc.oidc_subject_claim.clone(),
                groups: oidc.oidc_groups_claim.clone(),
                organisation: oidc.oidc_organisation_claim.clone(),
            },
            cache: TokenCache::new(
                oidc.oidc_token_cache_size,
                oidc.oidc_token_cache_ttl,
                oidc.oidc_clock_skew,
            ),
        })
    }

    /// Verify the value of an `Authorization` header.
    pub async fn verify_header(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let value = header.ok_or(AuthError::MissingToken)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::NotBearer);
        }
        self.verify(token.trim()).await
    }

    /// Verify a compact JWS and map its claims to a [`Principal`]; a token verified in
    /// the last minute is answered from the [`TokenCache`] (time claims re-checked).
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let digest = TokenCache::digest(token);
        if let Some(cached) = self.cache.get(&digest, chrono::Utc::now().timestamp()) {
            return cached;
        }
        let (principal, validity) = self.verify_uncached(token).await?;
        self.cache.insert(digest, &principal, validity);
        Ok(principal)
    }

    async fn verify_uncached(&self, token: &str) -> Result<(Principal, Validity), AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(_s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed(
                "expected three base64url parts separated by '.'".into(),
            ));
        };
        let header: PeekHeader = peek(h, "header")?;
        let alg_name = match &header.alg {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return Err(AuthError::Malformed("the header has no \"alg\"".into())),
        };
        let alg = Algorithm::from_str(&alg_name)
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or(AuthError::UnsupportedAlgorithm(alg_name))?;
        let claims: PeekClaims = peek(p, "payload")?;
        let iss = match claims.iss {
            Some(Value::String(s)) => s,
            Some(_) => return Err(AuthError::InvalidClaim("iss".into())),
            None => return Err(AuthError::MissingClaim("iss".into())),
        };
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.issuer == iss)
            .ok_or(AuthError::UntrustedIssuer(iss))?;
        let key = issuer.keys.find(header.kid.as_deref(), alg).await?;

        let mut validation = Validation::new(alg);
        validation.leeway = self.skew.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| self.map_error(e))?;
        let validity = Validity {
            exp: time_claim(&data.claims, "exp")?.unwrap_or(i64::MIN),
            nbf: time_claim(&data.claims, "nbf")?,
        };
        Ok((self.principal(&issuer.issuer, data.claims)?, validity))
    }

    fn map_error(&self, e: jsonwebtoken::errors::Error) -> AuthError {
        match e.into_kind() {
            ErrorKind::InvalidSignature => AuthError::InvalidSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidAudience => AuthError::InvalidAudience(self.audience.clone()),
            ErrorKind::InvalidIssuer => AuthError::UntrustedIssuer(String::new()),
            ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c),
            ErrorKind::InvalidClaimFormat(c) => AuthError::InvalidClaim(c),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                AuthError::UnsupportedAlgorithm("mismatch between token and key".into())
            }
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => AuthError::InvalidSignature,
            ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                AuthError::Malformed("undecodable part".into())
            }
            _ => AuthError::Malformed("rejected".into()),
        }
    }

    fn principal(&self, issuer: &str, claims: Map<String, Value>) -> Result<Principal, AuthError> {
        let subject = match claims.get(&self.claims.subject) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) | None => {
                return Err(AuthError::MissingClaim(self.claims.subject.clone()));
            }
            Some(_) => return Err(AuthError::InvalidClaim(self.claims.subject.clone())),
        };
        let groups = match claims.get(&self.claims.groups) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| AuthError::InvalidClaim(self.claims.groups.clone()))?,
            Some(_) => return Err(AuthError::InvalidClaim(self.claims.groups.clone())),
        };
        let organisation = match claims.get(&self.claims.organisation) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        Ok(Principal {
            issuer: issuer.to_owned(),
            subject,
            groups,
            organisation,
        })
    }

    /// Whether every remote issuer has keys (for readiness).
    pub fn ready(&self) -> bool {
        self.issuers.iter().all(|i| match &i.keys {
            Keys::Remote(r) => r.has_keys(),
            Keys::Static { .. } => true,
        })
    }
}

/// A NumericDate claim (`exp`, `nbf`) as whole Unix seconds.
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f.floor() as i64))
            .map(Some)
            .ok_or_else(|| AuthError::InvalidClaim(name.into())),
        Some(_) => Err(AuthError::InvalidClaim(name.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asymmetric_algorithms_are_allowed() {
        assert_eq!(parse_allowed_algorithm("RS256"), Ok(Algorithm::RS256));
        assert_eq!(parse_allowed_algorithm("EdDSA"), Ok(Algorithm::EdDSA));
        assert!(
            parse_allowed_algorithm("HS256")
                .unwrap_err()
                .contains("HMAC")
        );
        assert!(parse_allowed_algorithm("none").is_err());
    }
}
