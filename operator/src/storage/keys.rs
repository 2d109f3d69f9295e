//! Serre's storage keys, kept in Kubernetes Secrets in Serre's namespace:
//!
//! - `serre-storage-keys` (name configurable): `kek-active` (the id of the KEK that
//!   wraps new data keys), `kek.<id>` (base64 of 32 bytes, one entry per KEK, older
//!   ones kept for unwrapping until rotated out) and `signing-key.pem` (Ed25519
//!   PKCS#8, signs deletion certificates).
//! - `serre-storage-data-keys` (name configurable, `--data-keys-secret`): every sandbox's
//!   data key, wrapped by a KEK (the KEK id inside the blob), one entry per sandbox named
//!   after it. Removing a sandbox's entry is the crypto-shredding step.
//!
//! One Secret of a fixed name (not one per sandbox) so that the operator's Role in Serre's
//! namespace lists the Secrets it may read by name (`resourceNames`): it cannot read any
//! other Secret there, the gateway's keys included. Entries are added with a merge patch
//! carrying the Secret's `resourceVersion` (compare-and-swap: a concurrent writer makes
//! it fail with 409 and it is retried on the new version) and never overwritten.
//!
//! That Secret grows with every sandbox (one entry each), so each read costs more the more
//! sandboxes there are: a new entry is written on the version just read to look for it
//! (one read, one patch), and this process adds one entry at a time rather than racing
//! itself into conflicts and re-reads.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Api, Client, ResourceExt};

use super::{Result, StorageError};
use crate::crypto::{CertificateSigner, DataKey, Kek, KekRing, KeyWrapper, WrappedKey};
use crate::resources::{LABEL_MANAGED_BY, LABEL_SANDBOX, MANAGER};

/// ConfigMap publishing the certificate verification key (public).
pub const PUBLIC_KEY_CONFIGMAP: &str = "serre-signing-public-key";
/// Name of the Secret holding the wrapped data keys, by default.
pub const DATA_KEYS_SECRET: &str = "serre-storage-data-keys";
/// How many times an entry is tried against a Secret that others change meanwhile.
const CAS_ATTEMPTS: usize = 8;
/// The Secret of a sandbox's wrapped data key before the shared one (Serre ≤ 0.1: one
/// Secret per sandbox, `wrapped-key` entry); `migrate-data-keys` moves them.
const LEGACY_PREFIX: &str = "serre-dk-";

/// The KEK ring and the signing key.
pub struct StorageKeys {
    pub keks: KekRing,
    pub signer: CertificateSigner,
    /// Held while a sandbox's entry is read and, if missing, added: one at a time.
    writing: tokio::sync::Mutex<()>,
}

/// A sandbox's data key, and what the storage status records of it.
pub struct SandboxDataKey {
    pub key: DataKey,
    /// Fingerprint of the wrapped key (`data_key_id` in the status, the certificate's
    /// `key_id_destroyed`).
    pub fingerprint: String,
    /// Whether it was made now.
    pub created: bool,
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
        Ok(Self {
            keks,
            signer,
            writing: tokio::sync::Mutex::default(),
        })
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

    /// The sandbox's data key: unwrapped from its entry of the data keys Secret
    /// (`secret`), or generated, wrapped and stored there. The wrap context binds the key
    /// to this sandbox object (name and uid). `recorded` is the fingerprint the sandbox's
    /// status holds, if any: a sandbox that had a key whose entry is gone gets an error,
    /// never a new key (which would leave its bucket unreadable).
    ///
    /// The Secret is read once (always: it, not a copy in memory, says whether a key was
    /// destroyed) and a missing entry is added on the version read.
    pub async fn data_key(
        &self,
        client: &Client,
        namespace: &str,
        secret: &str,
        sandbox: &str,
        uid: &str,
        recorded: Option<&str>,
    ) -> Result<SandboxDataKey> {
        let api = Api::<Secret>::namespaced(client.clone(), namespace);
        let context = format!("sandbox/{sandbox}/{uid}");
        let _one_at_a_time = self.writing.lock().await;
        let mut seen = api.get_opt(secret).await?;
        if let Some(found) = seen.as_ref().and_then(|s| text(s, sandbox)) {
            return self.existing(&found, &context);
        }
        if let Some(fingerprint) = recorded.filter(|f| !f.is_empty()) {
            return Err(StorageError::Keys(format!(
                "sandbox {sandbox:?} has a data key (fingerprint {fingerprint}) that Secret \
                 {namespace}/{secret} does not hold: no new key is made, it would leave the \
                 bucket unreadable. After an upgrade from a version that kept it in Secret \
                 {LEGACY_PREFIX}{sandbox}, move it: serre-operator migrate-data-keys \
                 --namespace {namespace} --secret {secret}"
            )));
        }
        let key = DataKey::generate()?;
        let wrapped = self.keks.wrap_key(&key, &context)?;
        match store_entry(&api, secret, sandbox, &wrapped.to_string(), &mut seen).await? {
            Stored::New => Ok(SandboxDataKey {
                key,
                fingerprint: wrapped.fingerprint(),
                created: true,
            }),
            // Another attempt stored one first: use that one.
            Stored::Existing(blob) => self.existing(&blob, &context),
        }
    }

    /// An entry found in the Secret, unwrapped in its sandbox's context.
    fn existing(&self, blob: &str, context: &str) -> Result<SandboxDataKey> {
        let wrapped: WrappedKey = blob.trim().parse()?;
        Ok(SandboxDataKey {
            key: self.keks.unwrap_key(&wrapped, context)?,
            fingerprint: wrapped.fingerprint(),
            created: false,
        })
    }

    /// Fingerprint of the sandbox's wrapped key (for the certificate), if it exists.
    pub async fn wrapped_key_id(
        client: &Client,
        namespace: &str,
        secret: &str,
        sandbox: &str,
    ) -> Result<Option<String>> {
        let api = Api::<Secret>::namespaced(client.clone(), namespace);
        let Some(blob) = entry(&api, secret, sandbox).await? else {
            return Ok(None);
        };
        let wrapped: WrappedKey = blob.trim().parse()?;
        Ok(Some(wrapped.fingerprint()))
    }

    /// Destroy the wrapped data key (remove the sandbox's entry): without it the
    /// sandbox's data cannot be decrypted. A missing entry or Secret is not an error.
    pub async fn destroy_data_key(
        client: &Client,
        namespace: &str,
        secret: &str,
        sandbox: &str,
    ) -> Result<()> {
        let api = Api::<Secret>::namespaced(client.clone(), namespace);
        let patch = serde_json::json!({ "data": { sandbox: null } });
        match api
            .patch(secret, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// What [`store_entry`] found.
enum Stored {
    /// The entry is ours.
    New,
    /// Someone stored one first: this blob.
    Existing(String),
}

/// The sandbox's entry (a wrapped key) of the data keys Secret, if any.
async fn entry(api: &Api<Secret>, secret: &str, sandbox: &str) -> Result<Option<String>> {
    let Some(s) = api.get_opt(secret).await? else {
        return Ok(None);
    };
    Ok(text(&s, sandbox))
}

/// Add `sandbox` → `blob` to the data keys Secret (created when missing), never
/// overwriting an entry: a merge patch conditioned on the version read, retried when the
/// Secret changed meanwhile.
async fn store_entry(
    api: &Api<Secret>,
    secret: &str,
    sandbox: &str,
    blob: &str,
    seen: &mut Option<Secret>,
) -> Result<Stored> {
    for attempt in 0..CAS_ATTEMPTS {
        if attempt > 0 {
            *seen = api.get_opt(secret).await?;
        }
        let written = match seen.as_ref() {
            Some(existing) => {
                if let Some(found) = text(existing, sandbox) {
                    return Ok(Stored::Existing(found));
                }
                let patch = serde_json::json!({
                    "metadata": { "resourceVersion": existing.resource_version() },
                    // ByteString serialises as base64, as `data` wants.
                    "data": { sandbox: ByteString(blob.as_bytes().to_vec()) },
                });
                api.patch(secret, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            }
            None => {
                let new = Secret {
                    metadata: ObjectMeta {
                        name: Some(secret.to_owned()),
                        labels: Some(BTreeMap::from([(
                            LABEL_MANAGED_BY.to_owned(),
                            MANAGER.to_owned(),
                        )])),
                        ..Default::default()
                    },
                    type_: Some("Opaque".into()),
                    data: Some(BTreeMap::from([(
                        sandbox.to_owned(),
                        ByteString(blob.as_bytes().to_vec()),
                    )])),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &new).await
            }
        };
        match written {
            Ok(now) => {
                *seen = Some(now);
                return Ok(Stored::New);
            }
            // Changed (or created) by someone else meanwhile: read it again.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StorageError::Keys(format!(
        "could not store the data key of sandbox {sandbox:?} in Secret {secret}: it kept \
         changing ({CAS_ATTEMPTS} attempts)"
    )))
}

/// What [`migrate_data_keys`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migration {
    /// Sandboxes whose wrapped key moved into the data keys Secret.
    pub moved: Vec<String>,
    /// Sandboxes whose old Secret held the same key as the data keys Secret already had.
    pub already: Vec<String>,
}

/// Move every `serre-dk-<sandbox>` Secret (one per sandbox, `wrapped-key` entry, labelled
/// by the operator) of `namespace` into an entry of the data keys Secret, then delete it.
/// An entry already there with another key stops everything (nothing deleted for it).
/// Run by ops, with their own rights (list, get, delete Secrets there), before the
/// operator that reads only the data keys Secret starts.
pub async fn migrate_data_keys(
    client: &Client,
    namespace: &str,
    secret: &str,
) -> Result<Migration> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let legacy = api
        .list(
            &ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER},{LABEL_SANDBOX}")),
        )
        .await?;
    let mut done = Migration::default();
    for old in legacy.items {
        let name = old.name_any();
        let Some(sandbox) = name.strip_prefix(LEGACY_PREFIX).map(str::to_owned) else {
            continue;
        };
        let blob = text(&old, "wrapped-key").ok_or_else(|| {
            StorageError::Keys(format!(
                "Secret {namespace}/{name} has no wrapped-key entry"
            ))
        })?;
        let blob = blob.trim().to_owned();
        let mut seen = api.get_opt(secret).await?;
        match store_entry(&api, secret, &sandbox, &blob, &mut seen).await? {
            Stored::New => done.moved.push(sandbox),
            Stored::Existing(found) if found.trim() == blob => done.already.push(sandbox),
            Stored::Existing(_) => {
                return Err(StorageError::Keys(format!(
                    "Secret {namespace}/{secret} already holds another data key for sandbox \
                     {sandbox:?} than {namespace}/{name}: left both as they are"
                )));
            }
        }
        api.delete(&name, &Default::default()).await?;
    }
    Ok(done)
}
