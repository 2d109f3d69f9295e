//! Startup and shutdown: build every part from the [`Config`], serve, and stop cleanly
//! (in-flight requests finish within the grace period, the audit queue is drained).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use chrono::Utc;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::audit::{AuditLog, Draft, Outcome};
use crate::authz::Authorizer;
use crate::cluster::{self, Cluster, SYSTEM_PRINCIPAL};
use crate::config::Config;
use crate::console::{self, Console, Web};
use crate::http::{self, App};
use crate::identity::dev::DevIssuer;
use crate::identity::oidc::RemoteKeys;
use crate::identity::{Keys, TrustedIssuer, Verifier};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tenants::Directory;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("policies: {0}")]
    Policies(#[from] crate::authz::AuthzError),
    #[error("identity: {0}")]
    Identity(String),
    #[error("tenants: {0}")]
    Tenants(#[from] crate::tenants::TenantsError),
    #[error("cluster: {0} (use --no-cluster with --tenants-file to run without one)")]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("data store: {0}")]
    Data(#[from] crate::datasets::DataPlaneError),
    #[error("usage accounting: {0}")]
    Usage(String),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    /// The console's state (its session cookies' sealer, its sign-in client).
    pub web: Arc<Web>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stop as on SIGTERM and wait until everything has stopped.
    pub async fn shutdown(self) {
        let Running {
            app,
            web,
            stop,
            task,
            ..
        } = self;
        drop((app, web));
        let _ = stop.send(true);
        let _ = task.await;
    }

    /// Wait until the gateway stops (on SIGTERM or Ctrl-C).
    pub async fn wait(self) {
        let Running { app, web, task, .. } = self;
        drop((app, web));
        let _ = task.await;
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Build the gateway and start serving; returns once it listens. With `signals`,
/// SIGTERM and Ctrl-C stop it and SIGHUP reloads the policies (the binary); without,
/// only [`Running::shutdown`] stops it (tests).
pub async fn start(config: Config, signals: bool) -> Result<Running, StartError> {
    config.validate()?;
    // Several rustls providers are enabled in the dependency tree: choose one before any
    // TLS client (kube, reqwest, sqlx) is built.
    crate::install_crypto_provider();
    let metrics = Arc::new(Metrics::default());
    let store = Store::connect(
        &config.database_url()?,
        config.database.database_max_connections,
    )
    .await?;
    tracing::info!(backend = ?store.backend(), "database ready");
    let authz = Authorizer::load(&config.policies_dir)?;
    tracing::info!(policies = ?authz.policy_ids(), dir = %config.policies_dir.display(), "policies loaded");

    // -- Identity
    let mut issuers = Vec::new();
    let mut remote = None;
    if let Some(issuer) = &config.oidc.oidc_issuer {
        let keys = Arc::new(
            RemoteKeys::new(
                issuer.clone(),
                config.oidc.oidc_http_timeout,
                config.oidc.oidc_jwks_min_refresh,
                config.oidc.oidc_jwks_max_age,
            )
            .map_err(StartError::Identity)?,
        );
        issuers.push(TrustedIssuer {
            issuer: issuer.clone(),
            keys: Keys::Remote(keys.clone()),
        });
        remote = Some(keys);
    }
    if config.dev_issuer {
        let dev = DevIssuer::load_or_create(&config.data_dir)
            .map_err(|e| StartError::Identity(e.to_string()))?;
        tracing::warn!("the development issuer is trusted: never do this in production");
        issuers.push(dev.trusted());
    }
    let verifier = Verifier::new(issuers, &config.oidc).map_err(StartError::Identity)?;
    if let Some(keys) = remote.clone() {
        // Fetch the keys now; keep trying in the background while the provider is down.
        if let Err(e) = keys.refresh_once().await {
            tracing::warn!(error = %e, "identity provider not reachable yet; retrying");
            let retry = config
                .oidc
                .oidc_jwks_min_refresh
                .max(Duration::from_secs(1));
            tokio::spawn(async move {
                while !keys.has_keys() {
                    tokio::time::sleep(retry).await;
                    if let Err(e) = keys.refresh_once().await {
                        tracing::debug!(error = %e, "identity provider still unreachable");
                    }
                }
            });
        }
    }

    // -- Cluster and tenants
    let mut cluster_handle = None;
    let tenants = if config.cluster.no_cluster {
        let path = config.cluster.tenants_file.as_deref().ok_or_else(|| {
            StartError::Identity("--tenants-file is required with --no-cluster".into())
        })?;
        Directory::from_file(path, &config.metropole_admin_groups)?
    } else {
        let client = cluster::client(&config.cluster).await?;
        cluster_handle = Some(Arc::new(Cluster::start(client.clone())));
        match &config.cluster.tenants_file {
            Some(path) => Directory::from_file(path, &config.metropole_admin_groups)?,
            None => {
                let cache = cluster::watch_tenants(client);
                Directory::from_cluster(cache.store, cache.synced, &config.metropole_admin_groups)
            }
        }
    };

    let data = Arc::new(crate::datasets::DataPlane::open(&config)?);
    tracing::info!(store = ?config.data.data_store, "data store ready");

    let (audit, audit_task) = AuditLog::start(store.clone(), metrics.clone());
    let accountant = Arc::new(
        crate::usage::Accountant::new(
            &config.usage,
            store.clone(),
            audit.clone(),
            cluster_handle.clone(),
        )
        .map_err(|e| StartError::Usage(e.to_string()))?
        .with_signer(data.audit_signer.clone()),
    );
    let console =
        Console::new(&config.console, &config.oidc, data.secret()).map_err(StartError::Identity)?;
    let push = Arc::new(Notify::new());
    let app = Arc::new(App {
        verifier,
        authz,
        tenants,
        store: store.clone(),
        audit: audit.clone(),
        cluster: cluster_handle.clone(),
        metrics: metrics.clone(),
        push: push.clone(),
        sandboxes: config.sandboxes.clone(),
        data,
        accountant,
    });

    let (stop, stop_rx) = watch::channel(false);
    let mut background = Vec::new();
    if let Some(c) = cluster_handle {
        background.push(tokio::spawn(cluster::pusher(
            c,
            store.clone(),
            audit.clone(),
            metrics.clone(),
            push,
            config.cluster.push_interval,
            stopped(stop_rx.clone()),
        )));
    }
    background.push(tokio::spawn(crate::audit::checkpoint::run(
        store.clone(),
        app.data.blobs.clone(),
        app.data.audit_signer.clone(),
        config.audit_checkpoint_interval,
        stopped(stop_rx.clone()),
    )));
    background.push(tokio::spawn(record_usage(
        app.clone(),
        config.usage.usage_interval,
        stopped(stop_rx.clone()),
    )));
    if signals {
        background.push(tokio::spawn(reload_on_sighup(
            app.clone(),
            stopped(stop_rx.clone()),
        )));
        background.push(tokio::spawn(stop_on_signal(
            stop.clone(),
            stopped(stop_rx.clone()),
        )));
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    app.data.set_listen_address(addr);
    if let Some(metrics_addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .map_err(|source| StartError::Listen {
                addr: metrics_addr,
                source,
            })?;
        tracing::info!(addr = %metrics_addr, "serre-api metrics listening");
        let router = http::metrics_router(app.clone());
        let rx = stop_rx.clone();
        background.push(tokio::spawn(async move {
            let server = axum::serve(listener, router).with_graceful_shutdown(stopped(rx));
            if let Err(e) = server.await {
                tracing::error!(error = %e, "metrics server failed");
            }
        }));
    }
    let web = Arc::new(Web {
        app: app.clone(),
        console,
    });
    let pages = console::router(
        web.clone(),
        config.body_limit,
        config.request_timeout,
        config.data.upload_timeout,
    );
    let router = http::router(
        app.clone(),
        config.body_limit,
        config.request_timeout,
        config.metrics_listen.is_none(),
        pages,
    );
    let grace = config.shutdown_grace;
    let rx = stop_rx.clone();
    let (blobs, signer) = (app.data.blobs.clone(), app.data.audit_signer.clone());
    // TCP_NODELAY on every connection: a streamed body (a view, a Delta Sharing range)
    // ends in a short segment, which Nagle's algorithm would hold until the client's
    // delayed ACK (up to 40 ms on Linux) on every response.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
        }
    });
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, router).with_graceful_shutdown(stopped(rx.clone()));
        tokio::select! {
            r = server => if let Err(e) = r { tracing::error!(error = %e, "server failed") },
            _ = async { stopped(rx).await; tokio::time::sleep(grace).await } => {
                tracing::warn!("shutdown grace period over; dropping requests in flight");
            }
        }
        for t in background {
            t.abort();
            let _ = t.await;
        }
        // Every audit handle is gone once the server and the pusher are: the writer
        // drains its queue and stops.
        drop(audit);
        let _ = tokio::time::timeout(Duration::from_secs(10), audit_task).await;
        // The last entries get their checkpoint too.
        match crate::audit::checkpoint::publish_head(&store, &blobs, &signer, None).await {
            Ok(Some(seq)) => tracing::info!(seq, "audit checkpoint published at shutdown"),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not publish the audit checkpoint at shutdown")
            }
        }
        store.close().await;
        tracing::info!("stopped");
    });
    tracing::info!(%addr, "serre-api listening");
    Ok(Running {
        addr,
        app,
        web,
        stop,
        task,
    })
}

async fn stop_on_signal(stop: watch::Sender<bool>, stopped: impl std::future::Future<Output = ()>) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
        _ = stopped => return,
    }
    let _ = stop.send(true);
}

async fn reload_on_sighup(app: Arc<App>, stopped: impl std::future::Future<Output = ()>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            r = hup.recv() => if r.is_none() { return },
        }
        let result = app.authz.reload();
        let details = match &result {
            Ok(ids) => {
                tracing::info!(policies = ?ids, "SIGHUP: policies reloaded");
                serde_json::json!({ "result": "ok", "policies": ids, "trigger": "SIGHUP" })
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: policies not reloaded; the previous ones stay");
                serde_json::json!({ "result": "failed", "error": e.to_string(), "trigger": "SIGHUP" })
            }
        };
        let mut draft = Draft::new(
            SYSTEM_PRINCIPAL,
            "policy.reload",
            "Platform::\"serre\"".into(),
            Outcome::Change,
        );
        draft.details = details;
        if let Err(e) = app.audit.append(vec![draft]).await {
            tracing::error!(error = %e, "could not record the policy reload");
        }
    }
}

/// Usage accounting passes ([`crate::usage::Accountant::pass`]) every `interval` until
/// `shutdown` resolves.
async fn record_usage(
    app: Arc<App>,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        match app.accountant.pass(Utc::now(), &app.tenants).await {
            Ok(r) if r.windows > 0 || !r.closed.is_empty() => {
                tracing::info!(windows = r.windows, closed = ?r.closed, "usage recorded");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "usage pass failed; the next pass resumes from the last recorded window")
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
