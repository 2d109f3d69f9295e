//! Flags of the OpenID Connect identity provider whose tokens the gateway trusts.

use std::str::FromStr;
use std::time::Duration;

use super::parse_duration;

#[derive(Clone, Debug, clap::Args)]
pub struct OidcConfig {
    /// OpenID Connect issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    #[arg(long, env = "SERRE_API_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// Audience the tokens must carry (`aud`); also the dev issuer's audience.
    #[arg(long, env = "SERRE_API_OIDC_AUDIENCE", default_value = "serre-api")]
    pub oidc_audience: String,

    /// Claim holding the principal's stable identifier.
    #[arg(long, env = "SERRE_API_OIDC_SUBJECT_CLAIM", default_value = "sub")]
    pub oidc_subject_claim: String,

    /// Claim holding the principal's groups (array of strings, or one string).
    #[arg(long, env = "SERRE_API_OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,

    /// Claim holding the principal's organisation (e.g. `siret` for ProConnect).
    #[arg(
        long,
        env = "SERRE_API_OIDC_ORGANISATION_CLAIM",
        default_value = "organisation"
    )]
    pub oidc_organisation_claim: String,

    /// Signature algorithms accepted (asymmetric only; `none` and HMAC are never accepted).
    #[arg(
        long,
        env = "SERRE_API_OIDC_ALGORITHMS",
        value_delimiter = ',',
        default_value = "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,EdDSA"
    )]
    pub oidc_algorithms: Vec<String>,

    /// Clock skew tolerated on `exp` and `nbf`.
    #[arg(long, env = "SERRE_API_OIDC_CLOCK_SKEW", default_value = "60s", value_parser = parse_duration)]
    pub oidc_clock_skew: Duration,

    /// Shortest interval between two JWKS fetches (a token with an unknown `kid`
    /// triggers a refresh at most this often).
    #[arg(long, env = "SERRE_API_OIDC_JWKS_MIN_REFRESH", default_value = "10s", value_parser = parse_duration)]
    pub oidc_jwks_min_refresh: Duration,

    /// Age after which the JWKS is fetched again on the next request.
    #[arg(long, env = "SERRE_API_OIDC_JWKS_MAX_AGE", default_value = "1h", value_parser = parse_duration)]
    pub oidc_jwks_max_age: Duration,

    /// Timeout of each request to the identity provider.
    #[arg(long, env = "SERRE_API_OIDC_HTTP_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub oidc_http_timeout: Duration,

    /// Verified tokens kept (by SHA-256 digest) so a repeated token skips the signature
    /// check; `exp`/`nbf` are still checked on every request. 0 disables the cache.
    #[arg(
        long,
        env = "SERRE_API_OIDC_TOKEN_CACHE_SIZE",
        default_value_t = 10_000
    )]
    pub oidc_token_cache_size: usize,

    /// Longest time a verified token is trusted without re-checking its signature (so a
    /// key withdrawn from the issuer's key set stops working within this time).
    #[arg(long, env = "SERRE_API_OIDC_TOKEN_CACHE_TTL", default_value = "60s", value_parser = parse_duration)]
    pub oidc_token_cache_ttl: Duration,
}

/// Parse one entry of `--oidc-algorithms`; HMAC and `none` are refused.
pub fn parse_allowed_algorithm(s: &str) -> Result<jsonwebtoken::Algorithm, String> {
    let alg = jsonwebtoken::Algorithm::from_str(s.trim())
        .map_err(|_| format!("{s:?} is not a JWS algorithm (e.g. RS256, ES256, EdDSA)"))?;
    if alg.family() == jsonwebtoken::AlgorithmFamily::Hmac {
        return Err(format!(
            "{s:?} is a shared-secret (HMAC) algorithm; only asymmetric ones are accepted"
        ));
    }
    Ok(alg)
}
