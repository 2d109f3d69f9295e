//! The development issuer: an ES256 key pair kept in the data directory, trusted only
//! when `--dev-issuer` is set (refused in production). `serre-api dev-token` mints
//! tokens with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header};
use sha2::{Digest, Sha256};

use super::{Keys, TrustedIssuer, VerifyingKey};

/// `iss` of development tokens.
pub const DEV_ISSUER: &str = "urn:serre:dev-issuer";
const KEY_FILE: &str = "dev-issuer-key.p8";

#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: not a PKCS#8 P-256 key")]
    BadKey(String),
    #[error("could not generate a key")]
    Generate,
    #[error("could not sign the token: {0}")]
    Sign(String),
}

/// The development issuer's key pair.
pub struct DevIssuer {
    kid: String,
    encoding: EncodingKey,
    public_point: Vec<u8>,
}

/// What a development token says.
#[derive(Clone, Debug, Default)]
pub struct DevClaims {
    pub subject: String,
    pub groups: Vec<String>,
    pub organisation: Option<String>,
    pub ttl: Duration,
}

impl DevIssuer {
    /// Load the key from `data_dir`, creating it (mode 0600) on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, DevIssuerError> {
        let path = data_dir.join(KEY_FILE);
        let io = |p: &PathBuf| {
            let p = p.display().to_string();
            move |source| DevIssuerError::Io { path: p, source }
        };
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io(&data_dir.to_path_buf()))?;
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| DevIssuerError::Generate)?;
                write_private(&path, doc.as_ref()).map_err(io(&path))?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| DevIssuerError::BadKey(path.display().to_string()))?;
        let public_point = pair.public_key().as_ref().to_vec();
        let kid = format!("dev-{}", &hex::encode(Sha256::digest(&public_point))[..16]);
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ec_der(&pkcs8),
            public_point,
        })
    }

    /// The issuer entry the verifier trusts.
    pub fn trusted(&self) -> TrustedIssuer {
        TrustedIssuer {
            issuer: DEV_ISSUER.to_owned(),
            keys: Keys::Static {
                kid: self.kid.clone(),
                key: Arc::new(VerifyingKey {
                    key: DecodingKey::from_ec_der(&self.public_point),
                    family: AlgorithmFamily::Ec,
                    alg: Some(Algorithm::ES256),
                }),
            },
        }
    }

    /// Mint a token for `audience`.
    pub fn mint(&self, claims: &DevClaims, audience: &str) -> Result<String, DevIssuerError> {
        let now = chrono::Utc::now().timestamp();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        let mut body = serde_json::json!({
            "iss": DEV_ISSUER,
            "aud": audience,
            "sub": claims.subject,
            "groups": claims.groups,
            "iat": now,
            "nbf": now,
            "exp": now + claims.ttl.as_secs() as i64,
        });
        if let (Some(org), Some(map)) = (&claims.organisation, body.as_object_mut()) {
            map.insert("organisation".into(), org.clone().into());
        }
        jsonwebtoken::encode(&header, &body, &self.encoding)
            .map_err(|e| DevIssuerError::Sign(e.to_string()))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OidcConfig;
    use crate::identity::{AuthError, Verifier};
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        o: OidcConfig,
    }

    fn verifier(dev: &DevIssuer) -> Verifier {
        let o = P::parse_from(["t"]).o;
        Verifier::new(vec![dev.trusted()], &o).unwrap()
    }

    #[tokio::test]
    async fn a_minted_token_verifies_and_the_key_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let dev = DevIssuer::load_or_create(dir.path()).unwrap();
        let claims = DevClaims {
            subject: "alice".into(),
            groups: vec!["ept-admins".into()],
            organisation: Some("est-ensemble".into()),
            ttl: Duration::from_secs(600),
        };
        let token = dev.mint(&claims, "serre-api").unwrap();
        let p = verifier(&dev).verify(&token).await.unwrap();
        assert_eq!(p.subject, "alice");
        assert_eq!(p.groups, ["ept-admins"]);
        assert_eq!(p.organisation.as_deref(), Some("est-ensemble"));
        // Same key on the next start.
        let again = DevIssuer::load_or_create(dir.path()).unwrap();
        assert_eq!(again.kid, dev.kid);
        verifier(&again).verify(&token).await.unwrap();
        // Another data directory is another key.
        let other_dir = tempfile::tempdir().unwrap();
        let other = DevIssuer::load_or_create(other_dir.path()).unwrap();
        assert!(matches!(
            verifier(&other).verify(&token).await,
            Err(AuthError::UnknownKey(_))
        ));
        // Wrong audience.
        let token = dev.mint(&claims, "someone-else").unwrap();
        assert!(matches!(
            verifier(&dev).verify(&token).await,
            Err(AuthError::InvalidAudience(_))
        ));
    }
}
