//! A cache of verified tokens, keyed by the SHA-256 of the compact token (the token itself
//! is never kept), so a client that sends the same bearer token on every request pays the
//! signature check once (as Envoy's `jwt_authn` does).
//!
//! What a hit still checks: `exp` and `nbf` against the clock (with the same skew), so a
//! cached token expires exactly when the token does. What a hit does not re-check: the
//! issuer's key set. An entry lives at most [`TokenCache::ttl`] (one minute by default),
//! so a key withdrawn from the issuer's JWKS stops accepting its tokens within that time.
//! Only successful verifications are cached: a refused token is checked again every time.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{AuthError, Principal};

struct Entry {
    principal: Principal,
    /// `exp` and `nbf` as Unix seconds.
    exp: i64,
    nbf: Option<i64>,
    cached_at: Instant,
}

/// Verified tokens by digest; bounded to `capacity` entries (cleared when full).
pub struct TokenCache {
    entries: RwLock<HashMap<[u8; 32], Entry>>,
    capacity: usize,
    ttl: Duration,
    skew: i64,
}

/// The time claims a cached entry is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub exp: i64,
    pub nbf: Option<i64>,
}

impl TokenCache {
    pub fn new(capacity: usize, ttl: Duration, skew: Duration) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity,
            ttl,
            skew: i64::try_from(skew.as_secs()).unwrap_or(i64::MAX),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The cached principal for `digest`: `None` when absent or older than the TTL, an
    /// error when the token has expired (or is not valid yet) since it was cached.
    pub fn get(&self, digest: &[u8; 32], now: i64) -> Option<Result<Principal, AuthError>> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let entry = entries.get(digest)?;
        if entry.cached_at.elapsed() > self.ttl {
            return None;
        }
        Some(self.check(entry, now))
    }

    fn check(&self, entry: &Entry, now: i64) -> Result<Principal, AuthError> {
        if entry.exp.saturating_add(self.skew) < now {
            return Err(AuthError::Expired);
        }
        if entry
            .nbf
            .is_some_and(|nbf| nbf.saturating_sub(self.skew) > now)
        {
            return Err(AuthError::NotYetValid);
        }
        Ok(entry.principal.clone())
    }

    pub fn insert(&self, digest: [u8; 32], principal: &Principal, validity: Validity) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity {
            // Drop what has expired or outlived the TTL; if that is not enough, start over
            // (a flood of distinct valid tokens only costs re-verification).
            let now = chrono::Utc::now().timestamp();
            let ttl = self.ttl;
            entries.retain(|_, e| e.exp >= now && e.cached_at.elapsed() <= ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            digest,
            Entry {
                principal: principal.clone(),
                exp: validity.exp,
                nbf: validity.nbf,
                cached_at: Instant::now(),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(sub: &str) -> Principal {
        Principal {
            issuer: "https://idp".into(),
            subject: sub.into(),
            groups: vec!["g".into()],
            organisation: None,
        }
    }

    #[test]
    fn hit_returns_the_principal_and_checks_time_claims() {
        let cache = TokenCache::new(10, Duration::from_secs(60), Duration::from_secs(30));
        let d = TokenCache::digest("a.b.c");
        assert!(cache.get(&d, 1000).is_none());
        let validity = Validity {
            exp: 2000,
            nbf: Some(900),
        };
        cache.insert(d, &principal("alice"), validity);
        assert_eq!(cache.get(&d, 1000), Some(Ok(principal("alice"))));
        // Within the skew, still valid; past it, expired.
        assert_eq!(cache.get(&d, 2030), Some(Ok(principal("alice"))));
        assert_eq!(cache.get(&d, 2031), Some(Err(AuthError::Expired)));
        assert_eq!(cache.get(&d, 869), Some(Err(AuthError::NotYetValid)));
        // Another token (one byte different) misses.
        assert!(cache.get(&TokenCache::digest("a.b.d"), 1000).is_none());
    }

    #[test]
    fn entries_older_than_the_ttl_miss() {
        let cache = TokenCache::new(10, Duration::ZERO, Duration::ZERO);
        let d = TokenCache::digest("t");
        cache.insert(
            d,
            &principal("bob"),
            Validity {
                exp: i64::MAX,
                nbf: None,
            },
        );
        std::thread::sleep(Duration::from_millis(2));
        assert!(cache.get(&d, 0).is_none());
    }

    #[test]
    fn capacity_is_bounded_and_zero_disables() {
        let cache = TokenCache::new(3, Duration::from_secs(60), Duration::ZERO);
        let validity = Validity {
            exp: i64::MAX,
            nbf: None,
        };
        for i in 0..10 {
            cache.insert(
                TokenCache::digest(&i.to_string()),
                &principal("x"),
                validity,
            );
            assert!(cache.len() <= 3);
        }
        let off = TokenCache::new(0, Duration::from_secs(60), Duration::ZERO);
        off.insert(TokenCache::digest("t"), &principal("x"), validity);
        assert!(off.get(&TokenCache::digest("t"), 0).is_none());
        assert!(off.is_empty());
    }
}
