//! The console's cookies and the pieces of the sign-in flow that need no network: sealed
//! (AES-256-GCM) cookies keyed from the gateway's data secret, PKCE (RFC 7636, `S256`),
//! random state and CSRF tokens.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The signed-in person's cookie.
pub const SESSION_COOKIE: &str = "serre_console";
/// The cookie that carries one sign-in attempt (state and PKCE verifier) to the callback.
pub const LOGIN_COOKIE: &str = "serre_console_login";
/// Where both cookies are sent.
pub const COOKIE_PATH: &str = "/console";

/// What the session cookie holds: the person's access token (verified again on every
/// request by the API's [`crate::identity::Verifier`]) and the session's CSRF token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    #[serde(rename = "t")]
    pub access_token: String,
    #[serde(rename = "c")]
    pub csrf: String,
    /// Unix seconds after which the cookie is refused, whatever the browser keeps.
    #[serde(rename = "e")]
    pub expires: i64,
    /// The provider's refresh token, when it gave one (`offline_access`): a lapsed access
    /// token is renewed with it, until `expires`.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The provider's ID token, sent back as `id_token_hint` when the person signs out
    /// (OpenID Connect RP-Initiated Logout 1.0).
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// What the sign-in cookie holds between the redirect to the provider and the callback.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Login {
    #[serde(rename = "s")]
    pub state: String,
    #[serde(rename = "v")]
    pub verifier: String,
    #[serde(rename = "e")]
    pub expires: i64,
}

/// Seals and opens the console's cookies. The key is derived from the data secret, so
/// every replica of the gateway opens the cookies of the others, and rotating the data
/// secret signs everyone out.
pub struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(b"serre-console-cookie-v1");
        let derived = mac.finalize().into_bytes();
        let key = UnboundKey::new(&AES_256_GCM, &derived).expect("32-byte AES key");
        Self {
            key: LessSafeKey::new(key),
        }
    }

    /// `value` as an opaque cookie value bound to the cookie's `name`.
    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> String {
        let mut data = serde_json::to_vec(value).expect("cookie payload serializes");
        let nonce_bytes: [u8; NONCE_LEN] = random();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(name.as_bytes()),
                &mut data,
            )
            .expect("AES-GCM seals");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        B64.encode(out)
    }

    /// The value sealed under `name`, or `None` if it was forged, altered or sealed
    /// under another name or key.
    pub fn open<T: DeserializeOwned>(&self, name: &str, cookie: &str) -> Option<T> {
        let raw = B64.decode(cookie).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut sealed)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).expect("system randomness");
    b
}

/// A fresh random token (state, CSRF): 32 bytes, base64url.
pub fn random_token() -> String {
    B64.encode(random::<32>())
}

/// A PKCE code verifier (RFC 7636 §4.1): 32 random bytes, base64url (43 characters).
pub fn pkce_verifier() -> String {
    random_token()
}

/// The `S256` code challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// Constant-time equality of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A `Set-Cookie` value: always `HttpOnly`, `SameSite=Lax` and scoped to `/console`;
/// `Secure` unless the console is served over plain HTTP on loopback.
pub fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path={COOKIE_PATH}; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}"
    )
}

/// A `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", 0, secure)
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn pkce_verifier_has_the_rfc_length_and_alphabet() {
        let v = pkce_verifier();
        assert!((43..=128).contains(&v.len()), "{v}");
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        );
        assert_ne!(v, pkce_verifier());
    }

    #[test]
    fn sessions_sealed_before_refresh_tokens_still_open_and_new_ones_keep_theirs() {
        let old: Session =
            serde_json::from_str(r#"{"t":"tok","c":"csrf","e":5}"#).expect("an older cookie");
        assert_eq!(old.refresh_token, None);
        let s = Sealer::from_secret(&[7u8; 32]);
        assert_eq!(old.id_token, None);
        let with = Session {
            refresh_token: Some("rt".into()),
            id_token: Some("idt".into()),
            ..old
        };
        let back: Session = s
            .open(SESSION_COOKIE, &s.seal(SESSION_COOKIE, &with))
            .expect("opens");
        assert_eq!(back.refresh_token.as_deref(), Some("rt"));
        assert_eq!(back.id_token.as_deref(), Some("idt"));
        assert!(
            !serde_json::to_string(&Session {
                refresh_token: None,
                ..back
            })
            .unwrap_or_default()
            .contains("\"r\"")
        );
    }

    #[test]
    fn sealed_cookies_open_only_under_their_name_and_key() {
        let s = Sealer::from_secret(&[7u8; 32]);
        let login = Login {
            state: "st".into(),
            verifier: "ve".into(),
            expires: 1,
        };
        let sealed = s.seal(LOGIN_COOKIE, &login);
        let back: Login = s.open(LOGIN_COOKIE, &sealed).expect("opens");
        assert_eq!(back.state, "st");
        assert!(
            s.open::<Login>(SESSION_COOKIE, &sealed).is_none(),
            "other name"
        );
        let other = Sealer::from_secret(&[8u8; 32]);
        assert!(
            other.open::<Login>(LOGIN_COOKIE, &sealed).is_none(),
            "other key"
        );
        let mut bytes = B64.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(
            s.open::<Login>(LOGIN_COOKIE, &B64.encode(bytes)).is_none(),
            "altered"
        );
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_outside_loopback() {
        let c = set_cookie(SESSION_COOKIE, "v", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.ends_with("; Secure"));
        assert!(c.contains("Path=/console"));
        assert!(!set_cookie(SESSION_COOKIE, "v", 60, false).contains("Secure"));
        assert!(clear_cookie(SESSION_COOKIE, false).contains("Max-Age=0"));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
        assert_eq!(
            cookie_value("a=1; serre_console=xy; b=2", SESSION_COOKIE),
            Some("xy")
        );
    }
}
