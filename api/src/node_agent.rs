//! The node agent's server (`serre-api node-energy`): runs the energy library's
//! [`Sampler`] on a timer and serves its totals on `/metrics` (OpenMetrics text) and
//! `/healthz`. What is sampled and how it is counted is in [`serre_energy::node_agent`].

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use serre_energy::EnergyError;
use serre_energy::node_agent::{AgentConfig, NodeMetrics, Sampler};

/// Check the directories can be read, then sample forever and serve `/metrics` on
/// `listener` until `shutdown` resolves.
pub async fn run(
    cfg: AgentConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), EnergyError> {
    let mut sampler = Sampler::start(cfg)?;
    let metrics: Arc<NodeMetrics> = sampler.metrics();
    let sampling = tokio::spawn(async move {
        let mut tick = tokio::time::interval(sampler.period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sampler.step();
        }
    });
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sampling.abort();
    served.map_err(|e| EnergyError::Config(format!("serving /metrics: {e}")))
}
