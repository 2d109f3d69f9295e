//! Serre's storage keys, kept in Kubernetes Secrets in Serre's namespace:
//!
//! - `serre-storage-keys` (name configurable): `kek-active` (the id of the KEK that
//!   wraps new data keys), `kek.<id>` (base64 of 32 bytes, one entry per KEK, older
//!   ones kept for unwrapping until rotated out) and `signing-key.pem` (Ed25519
//!   PKCS#8, signs deletion certificates).
//! - `serre-dk-<sandbox>`: one sandbox's data key, wrapped by a KEK, with the KEK id
//!   inside the blob. Deleting it is the crypto-shredding step.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Api, Client};

use super::{Result, StorageError};
use crate::crypto::{CertificateSigner, DataKey, Kek, KekRing, KeyWrapper, WrappedKey};
use crate::resources::{LABEL_MANAGED_BY, LABEL_SANDBOX, MANAGER};

/// ConfigMap publishing the certificate verification key (public).
pub const PUBLIC_KEY_CONFIGMAP: &str = "serre-signing-public-key";

/// The KEK ring and the signing key.
pub struct StorageKeys {
    pub keks: KekRing,
    pub signer: CertificateSigner,
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

impl StorageKeys {
    /// Load from the Secret; every problem names the Secret and the entry.
    pub async fn load(client: &Client, namespace: &str, name: &str) -> Result<Self> {
        let secret = Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .ok_or_else(|| StorageError::Keys(format!("Secret {namespace}/{name} does not exist (create it with `serre-operator storage-keys`)")))?;
        Self::from_secret(&secret, &format!("{namespace}/{name}"))
    }

    pub fn from_secret(secret: &Secret, what: &str) -> Result<Self> {
        let active = text(secret, "kek-active")
            .ok_or_else(|| StorageError::Keys(format!("Secret {what} has no kek-active entry")))?;
        let active = active.trim().to_owned();
        let mut primary = None;
        let mut previous = Vec::new();
        for (entry, value) in secret.data.iter().flatten() {
            let Some(id) = entry.strip_prefix("kek.") else {
                continue;
            };
            let b64 = String::from_utf8(value.0.clone())
                .map_err(|_| StorageError::Keys(format!("Secret {what}: {entry} is not text")))?;
            let kek = Kek::from_base64(id, &b64)
                .map_err(|e| StorageError::Keys(format!("Secret {what}: {entry}: {e}")))?;
            if id == active {
                primary = Some(kek)
            } else {
                previous.push(kek)
            }
        }
        let primary = primary.ok_or_else(|| {
            StorageError::Keys(format!(
                "Secret {what}: kek-active is {active:?} but there is no kek.{active} entry"
            ))
        })?;
        let keks = KekRing::new(primary, previous)?;
        let pem = text(secret, "signing-key.pem").ok_or_else(|| {
            StorageError::Keys(format!("Secret {what} has no signing-key.pem entry"))
        })?;
        let signer = CertificateSigner::load(&pem)
            .map_err(|e| StorageError::Keys(format!("Secret {what}: signing-key.pem: {e}")))?;
        Ok(Self { keks, signer })
    }

    /// A new key Secret (for `serre-operator storage-keys` and development installs).
    pub fn generate_secret(namespace: &str, name: &str) -> Result<Secret> {
        let id = format!("kek-{}", chrono::Utc::now().format("%Y%m%d"));
        let kek = crate::crypto::DataKey::generate()?;
        let signer = CertificateSigner::generate()?;
        let data = BTreeMap::from([
            ("kek-active".to_owned(), ByteString(id.clone().into_bytes())),
            (
                format!("kek.{id}"),
                ByteString(kek.sse_c_key_base64().as_bytes().to_vec()),
            ),
            (
                "signing-key.pem".to_owned(),
                ByteString(signer.to_pkcs8_pem()?.as_bytes().to_vec()),
            ),
        ]);
        Ok(Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Default::default()
        })
    }

    /// Publish the public verification key in a ConfigMap, writing only on change.
    pub async fn publish_public_key(&self, client: &Client, namespace: &str) -> Result<bool> {
        let pem = self.signer.public_key_pem()?;
        let api = Api::<ConfigMap>::namespaced(client.clone(), namespace);
        let current = api.get_opt(PUBLIC_KEY_CONFIGMAP).await?;
        let wanted = BTreeMap::from([
            ("public-key.pem".to_owned(), pem),
            ("key-id".to_owned(), self.signer.key_id().to_owned()),
        ]);
        if current.as_ref().and_then(|c| c.data.as_ref()) == Some(&wanted) {
            return Ok(false);
        }
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(PUBLIC_KEY_CONFIGMAP.into()),
                ..Default::default()
            },
            data: Some(wanted),
            ..Default::default()
        };
        let mut value = serde_json::to_value(&cm).map_err(|e| StorageError::Keys(e.to_string()))?;
        value["apiVersion"] = "v1".into();
        value["kind"] = "ConfigMap".into();
        api.patch(
            PUBLIC_KEY_CONFIGMAP,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await?;
        Ok(true)
    }

    /// The sandbox's data key: unwrapped from its Secret, or generated, wrapped and
    /// stored. The wrap context binds the key to this sandbox object (name and uid).
    pub async fn data_key(
        &self,
        client: &Client,
        namespace: &str,
        sandbox: &str,
        uid: &str,
    ) -> Result<(DataKey, bool)> {
        let api = Api::<Secret>::namespaced(client.clone(), namespace);
        let name = wrapped_key_secret(sandbox);
        let context = format!("sandbox/{sandbox}/{uid}");
        if let Some(existing) = api.get_opt(&name).await? {
            return Ok((self.unwrap_from(&existing, &context)?, false));
        }
        let key = DataKey::generate()?;
        let wrapped = self.keks.wrap_key(&key, &context)?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([
                    (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
                    (LABEL_SANDBOX.to_owned(), sandbox.to_owned()),
                ])),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([(
                "wrapped-key".to_owned(),
                ByteString(wrapped.to_string().into_bytes()),
            )])),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok((key, true)),
            // Another attempt stored one first: use that one.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = api.get(&name).await?;
                Ok((self.unwrap_from(&existing, &context)?, false))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn unwrap_from(&self, secret: &Secret, context: &str) -> Result<DataKey> {
        let blob = text(secret, "wrapped-key").ok_or_else(|| {
            StorageError::Keys("wrapped data key Secret has no wrapped-key entry".into())
        })?;
        let wrapped: WrappedKey = blob.trim().parse()?;
        Ok(self.keks.unwrap_key(&wrapped, context)?)
    }

    /// Fingerprint of the sandbox's wrapped key (for the certificate), if it exists.
    pub async fn wrapped_key_id(
        client: &Client,
        namespace: &str,
        sandbox: &str,
    ) -> Result<Option<String>> {
        let api = Api::<Secret>::namespaced(client.clone(), namespace);
        let Some(secret) = api.get_opt(&wrapped_key_secret(sandbox)).await? else {
            return Ok(None);
        };
        let Some(blob) = text(&secret, "wrapped-key") else {
            return Ok(None);
        };
        let wrapped: WrappedKey = blob.trim().parse()?;
        Ok(Some(wrapped.fingerprint()))
    }

    /// Destroy the wrapped data key: without it the sandbox's data cannot be decrypted.
    pub async fn destroy_data_key(client: &Client, namespace: &str, sandbox: &str) -> Result<()> {
        let api = Api::<Secret>::namespaced(client.clone(), namespace);
        match api
            .delete(&wrapped_key_secret(sandbox), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Name of the Secret holding a sandbox's wrapped data key.
pub fn wrapped_key_secret(sandbox: &str) -> String {
    format!("serre-dk-{sandbox}")
}
