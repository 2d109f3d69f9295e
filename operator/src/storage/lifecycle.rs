//! What the operator does with storage: provision a sandbox's bucket, key, data key
//! and namespace Secret; at teardown empty and delete them, destroy the data key and
//! issue a signed deletion certificate.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Api, Client};

use super::config::StorageConfig;
use super::keys::StorageKeys;
use super::{BucketInfo, Result, StorageProvisioner, bucket_name, objects};
use crate::crypto::{DeletionCertificate, SignedCertificate};
use crate::quantity::Quantity;
use crate::resources::{
    LABEL_MANAGED_BY, LABEL_SANDBOX, LABEL_TENANT, MANAGER, StorageStatus, StorageUsed,
};

/// Secret in each sandbox namespace with what S3 clients need (boto3, object_store).
pub const SANDBOX_SECRET: &str = "sandbox-storage";

/// The storage side of the operator.
pub struct Storage {
    pub provisioner: Arc<dyn StorageProvisioner>,
    pub keys: StorageKeys,
    pub config: StorageConfig,
    /// Serre's own namespace: wrapped data keys and certificates live there.
    pub namespace: String,
}

/// Who and what a storage operation is for.
pub struct Target<'a> {
    pub sandbox: &'a str,
    pub uid: &'a str,
    pub tenant: &'a str,
    pub namespace: &'a str,
}

impl Storage {
    /// Bucket quota in bytes from a validated storage quantity.
    pub fn quota_bytes(storage: &str) -> u64 {
        storage
            .parse::<Quantity>()
            .map_or(0, |q| u64::try_from(q.units_ceil()).unwrap_or(u64::MAX))
    }

    /// Make sure the sandbox has its bucket (with quota), key, data key and Secret.
    /// Calls the store only when the recorded status differs from what is wanted or
    /// the namespace Secret is missing, so an idle reconcile costs one read of that
    /// Secret, and one of the bucket's usage when `read_usage` (the controller spaces
    /// those out: each admin call costs the store an Argon2 check of its token).
    pub async fn provision(
        &self,
        client: &Client,
        t: &Target<'_>,
        storage: &str,
        current: Option<&StorageStatus>,
        read_usage: bool,
    ) -> Result<StorageStatus> {
        let bucket = bucket_name(t.sandbox);
        let max_size = Self::quota_bytes(storage);
        let secrets = Api::<Secret>::namespaced(client.clone(), t.namespace);
        if let Some(cur) = current
            && cur.bucket == bucket
            && cur.max_size == max_size.to_string()
            && cur.endpoint == self.config.s3_endpoint
            && secrets.get_opt(SANDBOX_SECRET).await?.is_some()
        {
            let mut same = cur.clone();
            if read_usage {
                same.used = self.used(&bucket, cur.used.as_ref()).await;
            }
            return Ok(same);
        }
        let ensured = self
            .provisioner
            .ensure_bucket(&bucket, max_size, current.is_none())
            .await?;
        let info = ensured.info;
        let creds = self
            .provisioner
            .ensure_key(&bucket, &info.id, ensured.created)
            .await?;
        let secret = &self.config.data_keys_secret;
        let recorded = current.map(|c| c.data_key_id.as_str());
        let data_key = self
            .keys
            .data_key(client, &self.namespace, secret, t.sandbox, t.uid, recorded)
            .await?;
        let data_key_id = data_key.fingerprint;
        let sse_c = data_key.key.sse_c_key_base64();
        let data = BTreeMap::from([
            (
                "AWS_ENDPOINT_URL".to_owned(),
                self.config.s3_endpoint.clone(),
            ),
            ("AWS_REGION".to_owned(), self.config.s3_region.clone()),
            ("AWS_ACCESS_KEY_ID".to_owned(), creds.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                creds.secret_access_key.clone(),
            ),
            ("S3_BUCKET".to_owned(), bucket.clone()),
            ("SSE_C_ALGORITHM".to_owned(), "AES256".to_owned()),
            ("SSE_C_KEY".to_owned(), sse_c.to_string()),
        ]);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(SANDBOX_SECRET.into()),
                labels: Some(BTreeMap::from([
                    (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
                    (LABEL_SANDBOX.to_owned(), t.sandbox.to_owned()),
                    (LABEL_TENANT.to_owned(), t.tenant.to_owned()),
                ])),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(
                data.into_iter()
                    .map(|(k, v)| (k, ByteString(v.into_bytes())))
                    .collect(),
            ),
            ..Default::default()
        };
        let mut value =
            serde_json::to_value(&secret).map_err(|e| super::StorageError::Keys(e.to_string()))?;
        value["apiVersion"] = "v1".into();
        value["kind"] = "Secret".into();
        secrets
            .patch(
                SANDBOX_SECRET,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&value),
            )
            .await?;
        // The bucket's figures as ensure_bucket just read them: no second read.
        let used = Some(usage_figures(&info, current.and_then(|c| c.used.as_ref())));
        Ok(StorageStatus {
            bucket,
            endpoint: self.config.s3_endpoint.clone(),
            key_id: creds.access_key_id,
            data_key_id,
            max_size: max_size.to_string(),
            removed: None,
            used,
        })
    }

    /// What the bucket holds now; `since` moves only when the figures change (so a
    /// reconcile that finds nothing new writes no status). A failed read keeps the
    /// previous figures: usage never fails provisioning.
    async fn used(&self, bucket: &str, previous: Option<&StorageUsed>) -> Option<StorageUsed> {
        match self.provisioner.bucket(bucket).await {
            Ok(Some(info)) => Some(usage_figures(&info, previous)),
            Ok(None) => previous.cloned(),
            Err(e) => {
                tracing::debug!(%bucket, error = %e, "bucket usage not read; keeping the last figures");
                previous.cloned()
            }
        }
    }

    /// Delete every object of the sandbox's bucket; returns what was removed now
    /// ((0, 0) when the bucket is already gone).
    pub async fn empty(&self, t: &Target<'_>) -> Result<(u64, u64)> {
        let bucket = bucket_name(t.sandbox);
        let Some(info) = self.provisioner.bucket(&bucket).await? else {
            return Ok((0, 0));
        };
        if info.objects == 0 && info.bytes == 0 {
            // Counters are approximate in Garage: list anyway, it is cheap when empty.
        }
        let creds = self
            .provisioner
            .ensure_key(&bucket, &info.id, false)
            .await?;
        let store = objects::bucket_store(
            &self.config.s3_endpoint,
            &self.config.s3_region,
            &bucket,
            &creds,
            None,
        )?;
        objects::empty_bucket(store.as_ref()).await
    }

    /// Delete the key and bucket in the store and the wrapped data key in Kubernetes.
    /// The key goes first: created after its bucket and deleted before it, a sandbox's
    /// key never outlives its bucket, which lets provisioning create the key of a bucket
    /// it has just created without searching for one (`ensure_key`).
    pub async fn destroy(&self, client: &Client, t: &Target<'_>) -> Result<()> {
        let bucket = bucket_name(t.sandbox);
        if let Some(key) = self.provisioner.key(&bucket).await? {
            self.provisioner.delete_key(&key.access_key_id).await?;
        }
        if let Some(info) = self.provisioner.bucket(&bucket).await? {
            self.provisioner.delete_bucket(&info.id).await?;
        }
        StorageKeys::destroy_data_key(
            client,
            &self.namespace,
            &self.config.data_keys_secret,
            t.sandbox,
        )
        .await
    }

    /// Sign and keep the deletion certificate (a ConfigMap in Serre's namespace that
    /// outlives the sandbox). Idempotent: an existing certificate is returned as is.
    pub async fn certify(
        &self,
        client: &Client,
        t: &Target<'_>,
        status: &StorageStatus,
        started_at: DateTime<Utc>,
        objects: u64,
        bytes: u64,
    ) -> Result<SignedCertificate> {
        let api = Api::<ConfigMap>::namespaced(client.clone(), &self.namespace);
        let name = certificate_name(t.sandbox, t.uid);
        if let Some(existing) = api.get_opt(&name).await?
            && let Some(json) = existing
                .data
                .as_ref()
                .and_then(|d| d.get("certificate.json"))
        {
            return Ok(SignedCertificate::from_json(json)?);
        }
        let certificate = DeletionCertificate {
            version: 1,
            sandbox: t.sandbox.to_owned(),
            tenant: t.tenant.to_owned(),
            bucket: status.bucket.clone(),
            objects_removed: objects,
            bytes_removed: bytes,
            key_id_destroyed: status.data_key_id.clone(),
            started_at,
            completed_at: Utc::now(),
            issuer: MANAGER.to_owned(),
        };
        let signed = self.keys.signer.sign(&certificate)?;
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name),
                labels: Some(BTreeMap::from([
                    (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
                    (LABEL_SANDBOX.to_owned(), t.sandbox.to_owned()),
                    (LABEL_TENANT.to_owned(), t.tenant.to_owned()),
                    (
                        "serre.metropolegrandparis.fr/kind".to_owned(),
                        "deletion-certificate".to_owned(),
                    ),
                ])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "certificate.json".to_owned(),
                signed.to_json_pretty()?,
            )])),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &cm).await {
            Ok(_) => Ok(signed),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(signed),
            Err(e) => Err(e.into()),
        }
    }
}

/// The bucket's figures for the status: the previous ones (and their `since`) while
/// they have not changed.
fn usage_figures(info: &BucketInfo, previous: Option<&StorageUsed>) -> StorageUsed {
    previous
        .filter(|p| p.bytes == info.bytes && p.objects == info.objects)
        .cloned()
        .unwrap_or(StorageUsed {
            bytes: info.bytes,
            objects: info.objects,
            since: Utc::now(),
        })
}

/// Name of a sandbox's deletion certificate ConfigMap (the uid prefix tells apart
/// two sandboxes that had the same name at different times).
pub fn certificate_name(sandbox: &str, uid: &str) -> String {
    let short: String = uid.chars().filter(|c| *c != '-').take(8).collect();
    format!("serre-deletion-{sandbox}-{short}")
}
