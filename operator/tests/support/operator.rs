//! The operator under test, run in-process on its own thread and runtime, shared by
//! every test of a binary (one operator per cluster, as in production).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Parser;
use serre_operator::config::BuildConfig;
use serre_operator::controller::{self, RunOptions};
use serre_operator::telemetry::Metrics;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    build: BuildConfig,
}

/// Start the shared operator once; returns its metrics.
pub fn shared_operator() -> Arc<Metrics> {
    static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            let metrics = Arc::new(Metrics::default());
            let m = metrics.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let client = super::client().await;
                    super::install(&client).await;
                    // Short notice and grace so expiry can be observed in a test.
                    let flags = Flags::parse_from([
                        "test",
                        "--expiry-notice",
                        "1h",
                        "--expiry-grace",
                        "6s",
                        "--platform-egress",
                        "127.0.0.1/32:13900",
                    ]);
                    let options = RunOptions {
                        concurrency: 8,
                        storage: None,
                        resync: Duration::from_secs(600),
                        events_namespace: super::OPERATOR_NAMESPACE.into(),
                    };
                    let _ = tx.send(());
                    controller::run(client, flags.build, options, m, std::future::pending()).await;
                });
            });
            rx.recv().expect("operator thread started");
            metrics
        })
        .clone()
}
