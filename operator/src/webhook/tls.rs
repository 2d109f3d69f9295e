//! The webhook's TLS: a private CA and a serving certificate signed by it (rcgen, ECDSA
//! P-256), kept in one Secret of the operator's namespace so every replica and every
//! restart serves the same certificate, and the API server trusts the CA through the
//! webhook configuration's `caBundle`.
//!
//! Lifetimes: the CA 10 years, the serving certificate 1 year. Any replica renews the
//! serving certificate (same CA, so `caBundle` does not change) once less than 90 days
//! are left or the names it must cover changed; every replica reloads the Secret every
//! `--webhook-check-interval` and serves what it holds. A CA that would expire before a
//! new serving certificate is replaced with everything else (see docs/operations.md for
//! the few seconds where replicas disagree). Writes use the Secret's resourceVersion,
//! so two replicas renewing at once cannot both win.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::json;

use crate::resources::{LABEL_MANAGED_BY, MANAGER};

pub const CA_LIFETIME_DAYS: i64 = 3650;
pub const SERVING_LIFETIME_DAYS: i64 = 365;
pub const RENEW_BEFORE_DAYS: i64 = 90;
const CA_NAME: &str = "serre-webhook-ca";

pub const ANNOTATION_HOSTS: &str = "serre.metropolegrandparis.fr/webhook-hosts";
pub const ANNOTATION_NOT_AFTER: &str = "serre.metropolegrandparis.fr/webhook-not-after";
pub const ANNOTATION_CA_NOT_AFTER: &str = "serre.metropolegrandparis.fr/webhook-ca-not-after";

/// What the Secret holds (PEM), with the validity of each certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookCertificate {
    pub ca_pem: String,
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// DNS names and IP addresses the serving certificate covers.
    pub hosts: Vec<String>,
    pub not_after: DateTime<Utc>,
    pub ca_not_after: DateTime<Utc>,
}

/// What a certificate needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    Keep,
    /// A new serving certificate from the same CA.
    Serving,
    /// A new CA and serving certificate.
    All,
}

fn to_time(t: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The CA's parameters: the same on every call, so a CA key read back from the Secret
/// signs certificates that chain to the stored CA certificate.
fn ca_params(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "Serre");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = to_time(not_before);
    params.not_after = to_time(not_after);
    params
}

/// A new CA: (certificate PEM, key PEM, not after).
fn new_ca(now: DateTime<Utc>) -> Result<(String, String, DateTime<Utc>), rcgen::Error> {
    let not_after = now + Duration::days(CA_LIFETIME_DAYS);
    let key = KeyPair::generate()?;
    let cert = ca_params(now - Duration::hours(1), not_after).self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem(), not_after))
}

/// A serving certificate for `hosts`, signed by the CA key `ca_key_pem`:
/// (certificate PEM, key PEM, not after).
fn issue(
    ca_key_pem: &str,
    hosts: &[String],
    now: DateTime<Utc>,
) -> Result<(String, String, DateTime<Utc>), rcgen::Error> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::new(ca_params(now, now), ca_key);
    let mut params = CertificateParams::new(hosts.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        hosts.first().cloned().unwrap_or_default(),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let not_after = now + Duration::days(SERVING_LIFETIME_DAYS);
    params.not_before = to_time(now - Duration::hours(1));
    params.not_after = to_time(not_after);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem(), not_after))
}

impl WebhookCertificate {
    /// A new CA and serving certificate for `hosts`.
    pub fn generate(hosts: &[String], now: DateTime<Utc>) -> Result<Self, rcgen::Error> {
        let (ca_pem, ca_key_pem, ca_not_after) = new_ca(now)?;
        let (cert_pem, key_pem, not_after) = issue(&ca_key_pem, hosts, now)?;
        Ok(Self {
            ca_pem,
            ca_key_pem,
            cert_pem,
            key_pem,
            hosts: hosts.to_vec(),
            not_after,
            ca_not_after,
        })
    }

    /// What must be renewed for these `hosts` at `now`.
    pub fn renewal(&self, hosts: &[String], now: DateTime<Utc>) -> Renewal {
        if self.ca_not_after - now <= Duration::days(SERVING_LIFETIME_DAYS) {
            return Renewal::All;
        }
        let mut have = self.hosts.clone();
        let mut want = hosts.to_vec();
        have.sort();
        want.sort();
        if have != want || self.not_after - now <= Duration::days(RENEW_BEFORE_DAYS) {
            Renewal::Serving
        } else {
            Renewal::Keep
        }
    }

    /// This certificate renewed as `renewal` says.
    pub fn renewed(
        &self,
        renewal: Renewal,
        hosts: &[String],
        now: DateTime<Utc>,
    ) -> Result<Self, rcgen::Error> {
        match renewal {
            Renewal::Keep => Ok(self.clone()),
            Renewal::All => Self::generate(hosts, now),
            Renewal::Serving => {
                let (cert_pem, key_pem, not_after) = issue(&self.ca_key_pem, hosts, now)?;
                Ok(Self {
                    cert_pem,
                    key_pem,
                    not_after,
                    hosts: hosts.to_vec(),
                    ..self.clone()
                })
            }
        }
    }

    /// The Secret's annotations and data.
    fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (ANNOTATION_HOSTS.to_owned(), self.hosts.join(",")),
            (ANNOTATION_NOT_AFTER.to_owned(), self.not_after.to_rfc3339()),
            (
                ANNOTATION_CA_NOT_AFTER.to_owned(),
                self.ca_not_after.to_rfc3339(),
            ),
        ])
    }

    fn data(&self) -> BTreeMap<String, ByteString> {
        [
            ("ca.crt", &self.ca_pem),
            ("ca.key", &self.ca_key_pem),
            ("tls.crt", &self.cert_pem),
            ("tls.key", &self.key_pem),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.clone().into_bytes())))
        .collect()
    }

    /// The Secret holding it.
    pub fn to_secret(&self, namespace: &str, name: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    LABEL_MANAGED_BY.to_owned(),
                    MANAGER.to_owned(),
                )])),
                annotations: Some(self.annotations()),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(self.data()),
            ..Secret::default()
        }
    }

    /// Read it back from its Secret.
    pub fn from_secret(secret: &Secret) -> Result<Self, String> {
        let data = secret.data.clone().unwrap_or_default();
        let text = |key: &str| {
            data.get(key)
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("has no entry {key}"))
        };
        let annotations = secret.metadata.annotations.clone().unwrap_or_default();
        let time = |key: &str| {
            annotations
                .get(key)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| format!("has no valid annotation {key}"))
        };
        Ok(Self {
            ca_pem: text("ca.crt")?,
            ca_key_pem: text("ca.key")?,
            cert_pem: text("tls.crt")?,
            key_pem: text("tls.key")?,
            hosts: annotations
                .get(ANNOTATION_HOSTS)
                .map(|h| h.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            not_after: time(ANNOTATION_NOT_AFTER)?,
            ca_not_after: time(ANNOTATION_CA_NOT_AFTER)?,
        })
    }
}

/// Errors of [`ensure`].
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("Secret {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "Secret {namespace}/{name} {reason}; it is not a webhook certificate Serre made: delete it and restart the operator to have a new one made"
    )]
    Unreadable {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("could not make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("Secret {namespace}/{name} kept changing while being renewed; retrying later")]
    Contended { namespace: String, name: String },
}

/// The webhook certificate for `hosts`: read from Secret `namespace/name`, made when
/// missing, renewed when due. Safe with several replicas at once.
pub async fn ensure(
    client: &Client,
    namespace: &str,
    name: &str,
    hosts: &[String],
    now: DateTime<Utc>,
) -> Result<WebhookCertificate, TlsError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_err = |source| TlsError::Api {
        namespace: namespace.into(),
        name: name.into(),
        source,
    };
    for _ in 0..5 {
        let Some(secret) = api.get_opt(name).await.map_err(api_err)? else {
            let cert = WebhookCertificate::generate(hosts, now)?;
            match api
                .create(&PostParams::default(), &cert.to_secret(namespace, name))
                .await
            {
                Ok(_) => return Ok(cert),
                Err(kube::Error::Api(s)) if s.code == 409 => continue, // another replica made it
                Err(e) => return Err(api_err(e)),
            }
        };
        let cert =
            WebhookCertificate::from_secret(&secret).map_err(|reason| TlsError::Unreadable {
                namespace: namespace.into(),
                name: name.into(),
                reason,
            })?;
        let renewal = cert.renewal(hosts, now);
        if renewal == Renewal::Keep {
            return Ok(cert);
        }
        let new = cert.renewed(renewal, hosts, now)?;
        let patch = json!({
            "metadata": {
                "resourceVersion": secret.metadata.resource_version,
                "annotations": new.annotations(),
            },
            "data": new.data(),
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(secret = %name, ?renewal, not_after = %new.not_after, "webhook certificate renewed");
                return Ok(new);
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue, // renewed by another replica
            Err(e) => return Err(api_err(e)),
        }
    }
    Err(TlsError::Contended {
        namespace: namespace.into(),
        name: name.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    fn hosts() -> Vec<String> {
        vec![
            "serre-operator-webhook.serre-system.svc".into(),
            "10.250.0.1".into(),
        ]
    }

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    /// Verify `cert` as the API server does: chained to `ca`, valid for `host` at `at`.
    fn verify(ca: &str, cert: &str, host: &str, at: DateTime<Utc>) -> Result<(), rustls::Error> {
        crate::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder(roots.into())
            .build()
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(host.to_owned()).unwrap(),
                &[],
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.timestamp() as u64)),
            )
            .map(|_| ())
    }

    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn the_serving_certificate_chains_to_the_ca_for_each_host() {
        let c = WebhookCertificate::generate(&hosts(), now()).unwrap();
        for host in hosts() {
            verify(&c.ca_pem, &c.cert_pem, &host, now()).unwrap();
        }
        assert!(verify(&c.ca_pem, &c.cert_pem, "evil.example", now()).is_err());
        let other = WebhookCertificate::generate(&hosts(), now()).unwrap();
        assert!(verify(&other.ca_pem, &c.cert_pem, "10.250.0.1", now()).is_err());
        assert!(c.not_after - now() > Duration::days(364));
        assert!(c.ca_not_after - now() > Duration::days(3649));
    }

    #[test]
    fn it_round_trips_through_its_secret() {
        let c = WebhookCertificate::generate(&hosts(), now()).unwrap();
        let s = c.to_secret("serre-system", "serre-webhook-tls");
        let back = WebhookCertificate::from_secret(&s).unwrap();
        // Times are kept to the second.
        assert_eq!(back.not_after.timestamp(), c.not_after.timestamp());
        assert_eq!(
            WebhookCertificate {
                not_after: c.not_after,
                ca_not_after: c.ca_not_after,
                ..back
            },
            c
        );
        let mut broken = s.clone();
        broken.data.as_mut().unwrap().remove("tls.key");
        assert_eq!(
            WebhookCertificate::from_secret(&broken).unwrap_err(),
            "has no entry tls.key"
        );
    }

    #[test]
    fn renewal_is_due_near_expiry_or_when_the_hosts_change() {
        let t0 = now();
        let c = WebhookCertificate::generate(&hosts(), t0).unwrap();
        assert_eq!(c.renewal(&hosts(), t0), Renewal::Keep);
        let mut reversed = hosts();
        reversed.reverse();
        assert_eq!(c.renewal(&reversed, t0), Renewal::Keep);
        assert_eq!(
            c.renewal(&["other.serre-system.svc".into()], t0),
            Renewal::Serving
        );
        let late = t0 + Duration::days(SERVING_LIFETIME_DAYS - RENEW_BEFORE_DAYS + 1);
        assert_eq!(c.renewal(&hosts(), late), Renewal::Serving);
        assert_eq!(
            c.renewal(&hosts(), t0 + Duration::days(CA_LIFETIME_DAYS - 300)),
            Renewal::All
        );
    }

    #[test]
    fn a_renewed_serving_certificate_keeps_the_ca() {
        let t0 = now();
        let c = WebhookCertificate::generate(&hosts(), t0).unwrap();
        let late = t0 + Duration::days(300);
        let r = c.renewed(Renewal::Serving, &hosts(), late).unwrap();
        assert_eq!(
            (r.ca_pem.as_str(), r.ca_key_pem.as_str()),
            (c.ca_pem.as_str(), c.ca_key_pem.as_str())
        );
        assert_ne!(r.cert_pem, c.cert_pem);
        assert_ne!(r.key_pem, c.key_pem);
        assert!(r.not_after > c.not_after);
        // The CA the API server already trusts accepts the new certificate.
        verify(&c.ca_pem, &r.cert_pem, "10.250.0.1", late).unwrap();
        let all = c.renewed(Renewal::All, &hosts(), late).unwrap();
        assert_ne!(all.ca_pem, c.ca_pem);
    }
}
