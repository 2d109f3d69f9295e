//! `serre-operator`: run the operator, or generate/install its manifests.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use kube::Client;
use serre_operator::config::{BuildConfig, RuntimeConfig};
use serre_operator::controller::{self, RunOptions};
use serre_operator::crypto::CertificateVerifier;
use serre_operator::storage::config::StorageConfig;
use serre_operator::storage::garage::GarageAdmin;
use serre_operator::storage::keys::StorageKeys;
use serre_operator::storage::lifecycle::Storage;
use serre_operator::telemetry::{Metrics, init_logging};
use serre_operator::webhook::{self, WebhookConfig};
use serre_operator::{manifests, server};
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "serre-operator",
    version,
    about = "Serre operator: per-tenant AI test sandboxes on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    build: BuildConfig,
    #[command(flatten)]
    runtime: RuntimeConfig,
    #[command(flatten)]
    storage: StorageConfig,
    #[command(flatten)]
    webhook: WebhookConfig,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator (the default when no subcommand is given).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Write the generated chart files (CRDs, editor ClusterRole); with --check, fail on drift.
    Manifests {
        #[arg(long, default_value = "charts/serre")]
        chart: PathBuf,
        #[arg(long)]
        check: bool,
    },
    /// Apply the CRDs, the editor ClusterRole and the operator namespace to the
    /// current cluster (development clusters; production installs with Helm).
    Install {
        /// Namespace of the operator (leader Lease, Events).
        #[arg(long, env = "SERRE_NAMESPACE", default_value = "serre-system")]
        namespace: String,
    },
    /// Create the storage keys Secret (KEK and certificate signing key) in the
    /// operator namespace if it does not exist yet; never overwrites one.
    StorageKeys {
        #[arg(long, env = "SERRE_NAMESPACE", default_value = "serre-system")]
        namespace: String,
        #[arg(
            long,
            env = "SERRE_STORAGE_KEYS_SECRET",
            default_value = "serre-storage-keys"
        )]
        secret: String,
    },
    /// Move the wrapped data keys of an older install (one Secret `serre-dk-<sandbox>`
    /// per sandbox) into the data keys Secret, then delete the old Secrets. Run it with
    /// your own rights (list, get, create, patch and delete Secrets in the namespace)
    /// before upgrading the operator, whose Role reads only the Secrets it names.
    MigrateDataKeys {
        #[arg(long, env = "SERRE_NAMESPACE", default_value = "serre-system")]
        namespace: String,
        #[arg(
            long,
            env = "SERRE_STORAGE_DATA_KEYS_SECRET",
            default_value = serre_operator::storage::keys::DATA_KEYS_SECRET
        )]
        secret: String,
    },
    /// Verify a deletion certificate (JSON file) with a public key (PEM file).
    VerifyCertificate {
        /// The certificate JSON, as stored in the `serre-deletion-…` ConfigMap.
        certificate: PathBuf,
        /// The public key PEM, as published in the `serre-signing-public-key` ConfigMap.
        #[arg(long)]
        public_key: PathBuf,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    // `serre-operator [FLAGS]` means `serre-operator run [FLAGS]`.
    let mut args: Vec<String> = std::env::args().collect();
    let first = args.get(1).map(String::as_str);
    if first
        .is_none_or(|a| a.starts_with('-') && !matches!(a, "-h" | "--help" | "-V" | "--version"))
    {
        args.insert(1, "run".into());
    }
    let cli = Cli::parse_from(args);
    init_logging();
    serre_operator::install_crypto_provider();
    match cli.command {
        Command::Crds => {
            for crd in manifests::crds() {
                print!("---\n{}", serde_yaml::to_string(&crd)?);
            }
            Ok(())
        }
        Command::Manifests { chart, check } => {
            manifests::write(&chart, check)?;
            Ok(())
        }
        Command::Install { namespace } => {
            let client = Client::try_default()
                .await
                .context("no usable kubeconfig (KUBECONFIG or in-cluster)")?;
            manifests::install(&client, &namespace).await?;
            info!("CRDs, ClusterRole and namespace {namespace} installed");
            Ok(())
        }
        Command::StorageKeys { namespace, secret } => {
            let client = Client::try_default()
                .await
                .context("no usable kubeconfig (KUBECONFIG or in-cluster)")?;
            let api =
                kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client, &namespace);
            if api.get_opt(&secret).await?.is_some() {
                info!("Secret {namespace}/{secret} already exists; left unchanged");
                return Ok(());
            }
            let new = StorageKeys::generate_secret(&namespace, &secret)?;
            api.create(&Default::default(), &new).await?;
            info!("Secret {namespace}/{secret} created with a new KEK and signing key");
            Ok(())
        }
        Command::MigrateDataKeys { namespace, secret } => {
            let client = Client::try_default()
                .await
                .context("no usable kubeconfig (KUBECONFIG or in-cluster)")?;
            let done =
                serre_operator::storage::keys::migrate_data_keys(&client, &namespace, &secret)
                    .await?;
            info!(
                moved = ?done.moved,
                already = ?done.already,
                "wrapped data keys are in Secret {namespace}/{secret}; the old Secrets are deleted"
            );
            Ok(())
        }
        Command::VerifyCertificate {
            certificate,
            public_key,
        } => {
            let pem = std::fs::read_to_string(&public_key)
                .with_context(|| format!("{}", public_key.display()))?;
            let json = std::fs::read_to_string(&certificate)
                .with_context(|| format!("{}", certificate.display()))?;
            let verifier = CertificateVerifier::from_public_key_pem(&pem)?;
            match verifier.verify_json(&json) {
                Ok(c) => {
                    println!(
                        "valid: sandbox {} of tenant {}: bucket {} emptied ({} objects, {} bytes), key {} destroyed at {}",
                        c.sandbox,
                        c.tenant,
                        c.bucket,
                        c.objects_removed,
                        c.bytes_removed,
                        c.key_id_destroyed,
                        c.completed_at
                    );
                    Ok(())
                }
                Err(e) => bail!("INVALID certificate: {e}"),
            }
        }
        Command::Run(a) => run(a.build, a.runtime, a.storage, a.webhook).await,
    }
}

async fn run(
    build: BuildConfig,
    runtime: RuntimeConfig,
    storage: StorageConfig,
    policy: WebhookConfig,
) -> Result<()> {
    if let Err(e) = build.validate().and_then(|()| policy.validate()) {
        bail!("invalid configuration: {e}");
    }
    let client = Client::try_default()
        .await
        .context("no usable kubeconfig (set KUBECONFIG, or run in a cluster)")?;
    let storage = match &storage.garage_admin_endpoint {
        None => {
            info!("no object store configured (--garage-admin-endpoint): sandboxes get no bucket");
            None
        }
        Some(endpoint) => {
            let token = storage
                .admin_token()
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
            let provisioner = GarageAdmin::new(endpoint, token)?;
            let keys = StorageKeys::load(&client, &runtime.namespace, &storage.storage_keys_secret)
                .await
                .context("--storage-keys-secret")?;
            keys.publish_public_key(&client, &runtime.namespace).await?;
            info!(endpoint = %endpoint, "object store configured");
            Some(Storage {
                provisioner: Arc::new(provisioner),
                keys,
                config: storage,
                namespace: runtime.namespace.clone(),
            })
        }
    };
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let http = tokio::spawn(server::serve(
        runtime.http_addr,
        metrics.clone(),
        ready.clone(),
    ));

    // Every replica serves the admission webhook (the API server calls any of them through
    // the Service), and is ready only once it does.
    let _webhook = if policy.enabled {
        let platform = webhook::platform_images(&build);
        let w = webhook::start(
            client.clone(),
            policy,
            runtime.namespace.clone(),
            platform,
            metrics.clone(),
        )
        .await
        .context("admission webhook")?;
        Some(w)
    } else {
        info!("no admission webhook (--webhook): sandbox pods are checked by Kubernetes only");
        None
    };

    // SIGTERM (the kubelet) or Ctrl-C: listened to from here on, standing by or leading.
    let mut stop = Box::pin(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("interrupted"),
            () = terminate() => info!("terminated"),
        }
    });
    let (leader_lost_tx, leader_lost_rx) = tokio::sync::oneshot::channel::<()>();
    let mut _lease_task = None;
    if runtime.leader_election {
        let identity = runtime
            .identity
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .unwrap_or_else(|| format!("serre-operator-{}", std::process::id()));
        let manager =
            kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &runtime.lease_name)
                .with_namespace(&runtime.namespace)
                .with_identity(&identity)
                .with_duration(runtime.lease_duration.as_secs().max(2))
                .with_grace((runtime.lease_duration.as_secs() / 3).max(1))
                .with_field_manager("serre-operator-lease")
                .build()
                .await
                .context("could not prepare the leader Lease")?;
        let (mut channel, task) = manager.watch().await;
        info!(lease = %runtime.lease_name, namespace = %runtime.namespace, %identity, "waiting for leadership");
        ready.store(true, Ordering::Relaxed); // a standby replica is healthy and ready
        while !*channel.borrow_and_update() {
            // A standby stops on SIGTERM at once: otherwise the kubelet waits the whole
            // grace period (30 s) before killing it, on every rollout and uninstall.
            tokio::select! {
                changed = channel.changed() => changed.context("leader election stopped")?,
                () = &mut stop => {
                    info!("stopped while standing by");
                    http.abort();
                    return Ok(());
                }
            }
        }
        info!("leader: starting controllers");
        metrics.leader.set(1);
        tokio::spawn(async move {
            while channel.changed().await.is_ok() {
                if !*channel.borrow() {
                    break;
                }
            }
            let _ = leader_lost_tx.send(());
        });
        _lease_task = Some(task);
    } else {
        drop(leader_lost_tx);
        ready.store(true, Ordering::Relaxed);
    }

    let leader_lost = Arc::new(AtomicBool::new(false));
    let lost_flag = leader_lost.clone();
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            () = stop => info!("shutting down"),
            r = leader_lost_rx => if r.is_ok() {
                error!("lost the leader Lease; stopping so a fresh start can compete again");
                lost_flag.store(true, Ordering::Relaxed);
            } else {
                std::future::pending::<()>().await
            },
        }
        let _ = stopping_tx.send(());
    };
    let options = RunOptions {
        concurrency: runtime.concurrency,
        storage,
        resync: runtime.resync,
        events_namespace: runtime.namespace.clone(),
    };
    // Reconciles in flight get SHUTDOWN_GRACE to finish (each is idempotent: the next
    // leader redoes what is cut short), then the process exits, well inside the kubelet's
    // 30 s. kube-runtime's graceful shutdown was seen never to finish when the stop came
    // within a second of the controllers starting (operator/tests/restart.rs).
    let grace = async {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = controller::run(client, build, options, metrics, shutdown) => {}
        () = grace => warn!(grace = ?SHUTDOWN_GRACE, "reconciles still running after the grace period; exiting without them"),
    }
    http.abort();
    if leader_lost.load(Ordering::Relaxed) {
        bail!("leadership lost");
    }
    Ok(())
}

/// How long reconciles in flight may take to finish once the operator is told to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
