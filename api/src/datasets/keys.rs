//! The gateway's data keys, in a directory laid out like the operator's key Secret (so a
//! Kubernetes Secret mounted as a volume works as is):
//!
//! - `kek-active`: the id of the key-encryption key that wraps new data keys;
//! - `kek.<id>`: base64 of 32 bytes, one file per KEK (older ones kept to unwrap);
//! - `data-secret`: base64 of 32 bytes; signs Delta Sharing tokens and file links, and
//!   derives each grant's pseudonym key (HMAC-SHA-256 of the grant id);
//! - `audit-signing-key.pem`: the Ed25519 key (PKCS#8 PEM) that signs the audit log's
//!   checkpoints ([`crate::audit::checkpoint`]), held here, outside the database.
//!
//! In development the directory is created with fresh keys when missing; in production it
//! must exist.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serre_crypto::{CertificateSigner, DataKey, Kek, KekRing};

use crate::audit::checkpoint::SIGNING_KEY_FILE;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub struct DataKeys {
    pub keks: KekRing,
    pub secret: Zeroizing<Vec<u8>>,
    pub audit_signer: Arc<CertificateSigner>,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeys").finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Zeroizing<String>, KeysError> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| KeysError::Io {
            path: path.display().to_string(),
            source,
        })
}

fn invalid(path: &Path, message: impl Into<String>) -> KeysError {
    KeysError::Invalid {
        path: path.display().to_string(),
        message: message.into(),
    }
}

impl DataKeys {
    /// Load the keys from `dir`; every problem names the file.
    pub fn load(dir: &Path) -> Result<Self, KeysError> {
        let active_path = dir.join("kek-active");
        let active = read(&active_path)?.trim().to_owned();
        let mut primary = None;
        let mut previous = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| KeysError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_prefix("kek.") else {
                continue;
            };
            let path = entry.path();
            let kek =
                Kek::from_base64(id, &read(&path)?).map_err(|e| invalid(&path, e.to_string()))?;
            if id == active {
                primary = Some(kek);
            } else {
                previous.push(kek);
            }
        }
        let primary = primary.ok_or_else(|| {
            invalid(
                &active_path,
                format!("names {active:?} but there is no kek.{active} file"),
            )
        })?;
        let keks = KekRing::new(primary, previous).map_err(|e| invalid(dir, e.to_string()))?;
        let secret_path = dir.join("data-secret");
        let secret = Zeroizing::new(
            B64.decode(read(&secret_path)?.trim())
                .map_err(|_| invalid(&secret_path, "not base64"))?,
        );
        if secret.len() < 32 {
            return Err(invalid(&secret_path, "must hold at least 32 bytes"));
        }
        let audit_signer = Arc::new(load_audit_signer(dir)?);
        Ok(Self {
            keks,
            secret,
            audit_signer,
        })
    }

    /// Load the keys, creating the directory with fresh keys first when it does not exist
    /// (development only); a directory made before audit checkpoints gets its signing key.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeysError> {
        if !dir.join("kek-active").exists() {
            Self::create(dir)?;
        } else if !dir.join(SIGNING_KEY_FILE).exists() {
            let (name, pem) = fresh_signing_key(dir)?;
            write_private(&dir.join(name), pem.as_bytes())?;
        }
        Self::load(dir)
    }

    fn create(dir: &Path) -> Result<(), KeysError> {
        let io = |source| KeysError::Io {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        // kek-active last: its presence is what marks the directory complete.
        for (name, value) in fresh_entries(dir)?.iter().rev() {
            write_private(&dir.join(name), value.as_bytes())?;
        }
        Ok(())
    }

    /// A Secret holding fresh keys, in the layout [`DataKeys::load`] reads once it is
    /// mounted (for `serre-api data-keys`, which the chart's install hook runs).
    pub fn generate_secret(
        namespace: &str,
        name: &str,
    ) -> Result<k8s_openapi::api::core::v1::Secret, KeysError> {
        use k8s_openapi::ByteString;
        let data = fresh_entries(Path::new(name))?
            .into_iter()
            .map(|(k, v)| (k, ByteString(v.as_bytes().to_vec())))
            .collect();
        Ok(k8s_openapi::api::core::v1::Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Default::default()
        })
    }

    /// The secret that signs tokens and derives pseudonym keys.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

/// `kek-active`, `kek.<id>` and `data-secret` with fresh random keys (`kek-active` first).
fn fresh_entries(context: &Path) -> Result<Vec<(String, Zeroizing<String>)>, KeysError> {
    let id = format!("kek-{}", chrono::Utc::now().format("%Y%m%d"));
    let fresh = || {
        DataKey::generate()
            .map(|k| k.sse_c_key_base64())
            .map_err(|e| invalid(context, e.to_string()))
    };
    Ok(vec![
        ("kek-active".to_owned(), Zeroizing::new(id.clone())),
        (format!("kek.{id}"), fresh()?),
        ("data-secret".to_owned(), fresh()?),
        fresh_signing_key(context)?,
    ])
}

/// A fresh audit signing key: its file name and PKCS#8 PEM.
pub fn fresh_signing_key(context: &Path) -> Result<(String, Zeroizing<String>), KeysError> {
    let pem = CertificateSigner::generate()
        .and_then(|k| k.to_pkcs8_pem())
        .map_err(|e| invalid(context, e.to_string()))?;
    Ok((SIGNING_KEY_FILE.to_owned(), pem))
}

/// The audit signing key of `dir`; a directory without one names the command that adds it.
pub fn load_audit_signer(dir: &Path) -> Result<CertificateSigner, KeysError> {
    let path = dir.join(SIGNING_KEY_FILE);
    if !path.exists() {
        return Err(invalid(
            &path,
            "missing: the audit log's checkpoints need an Ed25519 signing key here (`serre-api \
             data-keys` adds it to the keys Secret, `openssl genpkey -algorithm ed25519` makes one)",
        ));
    }
    CertificateSigner::load(&read(&path)?).map_err(|e| invalid(&path, e.to_string()))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeysError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeysError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_mounted_as_files_loads() {
        let secret =
            DataKeys::generate_secret("serre-system", "serre-gateway-data-keys").expect("secret");
        assert_eq!(secret.metadata.namespace.as_deref(), Some("serre-system"));
        let dir = tempfile::tempdir().expect("tempdir");
        let data = secret.data.expect("data");
        assert_eq!(data.len(), 4, "{:?}", data.keys());
        for (name, value) in &data {
            std::fs::write(dir.path().join(name), &value.0).expect("write");
        }
        let keys = DataKeys::load(dir.path()).expect("the mounted Secret loads");
        assert_eq!(keys.secret().len(), 32);
        let other = DataKeys::generate_secret("serre-system", "x").expect("secret");
        assert_ne!(
            other.data.expect("data")["data-secret"],
            data["data-secret"],
            "every call draws fresh keys"
        );
    }

    #[test]
    fn created_keys_load_again_and_bad_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = DataKeys::load_or_create(&dir.path().join("keys")).expect("create");
        let again = DataKeys::load(&dir.path().join("keys")).expect("load");
        use serre_crypto::KeyWrapper;
        assert_eq!(keys.secret(), again.secret());
        assert_eq!(keys.keks.key_id(), again.keks.key_id());

        std::fs::write(dir.path().join("keys/data-secret"), "c2hvcnQ=").expect("write");
        let err = DataKeys::load(&dir.path().join("keys")).expect_err("short secret");
        assert!(err.to_string().contains("data-secret"), "{err}");
        let missing = DataKeys::load(&dir.path().join("nope")).expect_err("missing");
        assert!(missing.to_string().contains("kek-active"), "{missing}");
    }

    #[test]
    fn a_keys_directory_without_the_audit_signing_key_says_how_to_add_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys_dir = dir.path().join("keys");
        let first = DataKeys::load_or_create(&keys_dir).expect("create");
        std::fs::remove_file(keys_dir.join(SIGNING_KEY_FILE)).expect("remove");
        let err = DataKeys::load(&keys_dir).expect_err("no signing key");
        assert!(err.to_string().contains("serre-api data-keys"), "{err}");
        // Development adds the missing key and keeps the others.
        let again = DataKeys::load_or_create(&keys_dir).expect("add the key");
        assert_eq!(first.secret(), again.secret());
        assert_ne!(first.audit_signer.key_id(), again.audit_signer.key_id());
    }
}
