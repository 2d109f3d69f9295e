//! The webhook's HTTPS server (rustls, HTTP/1.1) and what it reads: caches of the
//! sandbox namespaces (their tenant label) and of the tenants (their registries).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use super::configuration::PATH;
use super::review::{AdmissionReview, Decision, Platform, decide};
use super::tls::WebhookCertificate;
use crate::resources::{LABEL_MANAGED_BY, LABEL_SANDBOX, LABEL_TENANT, MANAGER, Tenant};
use crate::telemetry::Metrics;

/// Longest wait for a TLS handshake, and for a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate served, replaceable while serving.
#[derive(Debug)]
pub struct CertResolver(RwLock<Arc<CertifiedKey>>);

impl CertResolver {
    pub fn new(cert: &WebhookCertificate) -> Result<Arc<Self>, rustls::Error> {
        Ok(Arc::new(Self(RwLock::new(Arc::new(certified_key(cert)?)))))
    }

    pub fn replace(&self, cert: &WebhookCertificate) -> Result<(), rustls::Error> {
        let key = Arc::new(certified_key(cert)?);
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn certified_key(cert: &WebhookCertificate) -> Result<CertifiedKey, rustls::Error> {
    let bad = |what: &str| rustls::Error::General(format!("webhook {what} is not valid PEM"));
    let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad("certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).map_err(|_| bad("key"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)?;
    Ok(CertifiedKey::new(chain, signer))
}

/// Which registries a sandbox namespace's tenant allows, from caches filled by their
/// own watches (the webhook runs on every replica, so it cannot use the leader's).
#[derive(Clone)]
pub struct Lookup {
    namespaces: Store<Namespace>,
    tenants: Store<Tenant>,
    client: Client,
}

fn spawn_cache<K>(api: Api<K>, config: watcher::Config) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(e) = stream.next().await {
            if let Err(e) = e {
                warn!(kind = %K::kind(&()), error = %e, "webhook cache watch failed; retrying");
            }
        }
    });
    reader
}

impl Lookup {
    /// Start the caches and wait (at most a minute) for their first lists.
    pub async fn start(client: &Client) -> Result<Self, String> {
        let namespaces = spawn_cache(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}")),
        );
        let tenants = spawn_cache(
            Api::<Tenant>::all(client.clone()),
            watcher::Config::default(),
        );
        let ready = async {
            let _ = namespaces.wait_until_ready().await;
            let _ = tenants.wait_until_ready().await;
        };
        tokio::time::timeout(Duration::from_secs(60), ready)
            .await
            .map_err(|_| {
                "no list of namespaces and tenants within 60 s (RBAC: list and watch on both)"
                    .to_owned()
            })?;
        Ok(Self {
            namespaces,
            tenants,
            client: client.clone(),
        })
    }

    /// The allowed registries of the tenant of sandbox namespace `ns`. A namespace the
    /// cache does not show yet (just created) is read from the API server.
    pub async fn registries(&self, ns: &str) -> Result<Vec<String>, String> {
        let namespace = match self.namespaces.get(&ObjectRef::new(ns)) {
            Some(n) => n,
            None => Arc::new(
                Api::<Namespace>::all(self.client.clone())
                    .get_opt(ns)
                    .await
                    .map_err(|e| format!("could not read namespace {ns}: {e}"))?
                    .ok_or_else(|| format!("namespace {ns} does not exist"))?,
            ),
        };
        let labels = namespace.labels();
        if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGER)
            || !labels.contains_key(LABEL_SANDBOX)
        {
            return Err(format!(
                "namespace {ns} is not a sandbox namespace Serre made"
            ));
        }
        let tenant = labels
            .get(LABEL_TENANT)
            .ok_or_else(|| format!("namespace {ns} has no {LABEL_TENANT} label"))?;
        let tenant = self
            .tenants
            .get(&ObjectRef::new(tenant))
            .ok_or_else(|| format!("tenant {tenant} of namespace {ns} does not exist"))?;
        Ok(tenant.spec.allowed_registries.clone())
    }
}

/// What the handler reads.
pub struct State {
    pub lookup: Lookup,
    pub platform: Platform,
    pub metrics: Arc<Metrics>,
}

fn router(state: Arc<State>) -> Router {
    Router::new()
        .route(PATH, post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

async fn validate(Extract(state): Extract<Arc<State>>, body: Bytes) -> Response {
    let review: AdmissionReview = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not an AdmissionReview: {e}"),
            )
                .into_response();
        }
    };
    let Some(request) = review.request else {
        return (
            StatusCode::BAD_REQUEST,
            "an AdmissionReview without request",
        )
            .into_response();
    };
    let kind = request.kind.kind.clone();
    let ns = request.namespace.clone().unwrap_or_default();
    let lookup = if matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
        state.lookup.registries(&ns).await
    } else {
        Ok(Vec::new())
    };
    let decision = decide(&request, |_| lookup, &state.platform);
    match &decision {
        Decision::Allowed => {
            state.metrics.admission(&kind, "allowed");
            debug!(%kind, namespace = %ns, name = ?request.name, operation = %request.operation, "admitted");
        }
        Decision::Denied(message) => {
            state.metrics.admission(&kind, "denied");
            info!(%kind, namespace = %ns, name = ?request.name, operation = %request.operation, %message, "refused by the sandbox policy");
        }
    }
    axum::Json(decision.review(&request.uid)).into_response()
}

/// The TLS configuration: the certificate from `resolver`, HTTP/1.1 only; with
/// `client_ca` (PEM), a client certificate signed by that CA is required.
pub fn tls_config(
    resolver: Arc<CertResolver>,
    client_ca: Option<&str>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert
                    .map_err(|_| rustls::Error::General("the client CA is not valid PEM".into()))?;
                roots.add(cert)?;
            }
            if roots.is_empty() {
                return Err(rustls::Error::General(
                    "the client CA file holds no certificate".into(),
                ));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| rustls::Error::General(format!("client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    }
    .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accept connections until the process ends; each one in its own task.
pub async fn serve(listener: TcpListener, config: Arc<ServerConfig>, state: Arc<State>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let app = router(state);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "webhook accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "webhook TLS handshake timed out");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                debug!(%peer, error = %e, "webhook connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn resolver() -> (Arc<CertResolver>, String) {
        let cert = WebhookCertificate::generate(&["webhook.test".into()], Utc::now())
            .expect("certificate");
        (CertResolver::new(&cert).expect("resolver"), cert.ca_pem)
    }

    #[test]
    fn a_client_ca_must_hold_a_certificate() {
        let (r, ca) = resolver();
        assert!(tls_config(r.clone(), None).is_ok());
        assert!(tls_config(r.clone(), Some(&ca)).is_ok());
        let e = tls_config(r.clone(), Some("")).unwrap_err();
        assert!(e.to_string().contains("holds no certificate"), "{e}");
        let e = tls_config(
            r,
            Some("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not valid PEM"), "{e}");
    }
}
