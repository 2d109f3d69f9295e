//! `serre-operator`: run the operator, or generate/install its manifests.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use kube::Client;
use serre_operator::config::{BuildConfig, RuntimeConfig};
use serre_operator::controller::{self, RunOptions};
use serre_operator::telemetry::{Metrics, init_logging};
use serre_operator::{manifests, server};
use tracing::{error, info};

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
        Command::Run(a) => run(a.build, a.runtime).await,
    }
}

async fn run(build: BuildConfig, runtime: RuntimeConfig) -> Result<()> {
    if let Err(e) = build.validate() {
        bail!("invalid configuration: {e}");
    }
    let client = Client::try_default()
        .await
        .context("no usable kubeconfig (set KUBECONFIG, or run in a cluster)")?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let http = tokio::spawn(server::serve(
        runtime.http_addr,
        metrics.clone(),
        ready.clone(),
    ));

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
                .with_duration(15)
                .with_grace(5)
                .with_field_manager("serre-operator-lease")
                .build()
                .await
                .context("could not prepare the leader Lease")?;
        let (mut channel, task) = manager.watch().await;
        info!(lease = %runtime.lease_name, namespace = %runtime.namespace, %identity, "waiting for leadership");
        ready.store(true, Ordering::Relaxed); // a standby replica is healthy and ready
        while !*channel.borrow_and_update() {
            channel.changed().await.context("leader election stopped")?;
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
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("interrupted; shutting down"),
            _ = terminate() => info!("terminated; shutting down"),
            r = leader_lost_rx => if r.is_ok() {
                error!("lost the leader Lease; stopping so a fresh start can compete again");
                lost_flag.store(true, Ordering::Relaxed);
            } else {
                std::future::pending::<()>().await
            },
        }
    };
    let options = RunOptions {
        concurrency: runtime.concurrency,
        resync: runtime.resync,
        events_namespace: runtime.namespace.clone(),
    };
    controller::run(client, build, options, metrics, shutdown).await;
    http.abort();
    if leader_lost.load(Ordering::Relaxed) {
        bail!("leadership lost");
    }
    Ok(())
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
