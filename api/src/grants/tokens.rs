//! Bearer tokens scoped to one grant: the Delta Sharing profile token and the short-lived,
//! self-authorising file link. Both are `<prefix>.<base64url(claims)>.<base64url(mac)>`
//! with an HMAC-SHA-256 over the prefix and the claims under a key derived from the
//! gateway's data secret (a different key per kind, so one kind never passes as the
//! other). They carry no authority by themselves beyond the signature: every use also
//! checks that the grant still exists, is not revoked and has not expired, and that its
//! holder may still read it (`http/sharing.rs`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Delta Sharing profile: the sharing endpoints of one grant.
    Profile,
    /// One file of one grant, for a few minutes.
    FileLink,
    /// A trial run's init step fetching the views of the run's grants (`g` is the run).
    Run,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Profile => "serre-ds1",
            Kind::FileLink => "serre-fl1",
            Kind::Run => "serre-rt1",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Grant id.
    pub g: String,
    /// The principal the token was issued to (for the audit log).
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// The holder's groups that made them a member of the grant's tenant when the token
    /// was issued (none for a vendor). Every use asks the policies again with these groups
    /// and today's tenants and sandbox members, so a token ends with its holder's right.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grp: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

fn mac(secret: &[u8], kind: Kind) -> HmacSha256 {
    // Derive a per-kind key so a profile token never verifies as a file link.
    let mut derive = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    derive.update(b"serre token key v1\0");
    derive.update(kind.prefix().as_bytes());
    let key = derive.finalize().into_bytes();
    <HmacSha256 as Mac>::new_from_slice(&key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

pub fn sign(secret: &[u8], kind: Kind, claims: &Claims) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut m = mac(secret, kind);
    m.update(kind.prefix().as_bytes());
    m.update(b".");
    m.update(body.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{}.{body}.{tag}", kind.prefix())
}

/// Check the signature (in constant time) and the expiry; returns the claims.
pub fn verify(secret: &[u8], kind: Kind, token: &str, now: i64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(prefix), Some(body), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if prefix != kind.prefix() {
        return Err(TokenError::Malformed);
    }
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret, kind);
    m.update(prefix.as_bytes());
    m.update(b".");
    m.update(body.as_bytes());
    m.verify_slice(&tag).map_err(|_| TokenError::BadSignature)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            g: "grant-1".into(),
            sub: "vendor-a".into(),
            exp,
            grp: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_every_tampering_fails() {
        let secret = [7u8; 32];
        let t = sign(&secret, Kind::Profile, &claims(2000));
        assert_eq!(verify(&secret, Kind::Profile, &t, 1000), Ok(claims(2000)));
        assert_eq!(
            verify(&secret, Kind::Profile, &t, 2000),
            Err(TokenError::Expired)
        );
        // Another secret, another kind, a changed body, a cut token.
        assert_eq!(
            verify(&[8u8; 32], Kind::Profile, &t, 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&secret, Kind::FileLink, &t, 1000),
            Err(TokenError::Malformed)
        );
        let relabelled = t.replacen("serre-ds1", "serre-fl1", 1);
        assert_eq!(
            verify(&secret, Kind::FileLink, &relabelled, 1000),
            Err(TokenError::BadSignature)
        );
        let other = sign(&secret, Kind::Profile, &claims(9999));
        let body = other.split('.').nth(1).expect("body");
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{body}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&secret, Kind::Profile, &forged, 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&secret, Kind::Profile, &t[..t.len() - 3], 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&secret, Kind::Profile, "garbage", 1000),
            Err(TokenError::Malformed)
        );
    }
}
