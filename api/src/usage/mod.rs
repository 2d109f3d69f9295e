//! Usage accounting in the gateway: a background loop that follows trial runs, records
//! contiguous ledger windows (resuming from the last recorded one after a restart), closes
//! finished runs with their figures (status, catalogue), and warns tenants nearing their
//! energy budget. The figures themselves come from [`crate::energy`].

pub mod budget;
pub mod collect;
pub mod sandbox_report;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serre_resources::quantity::Quantity;
use serre_resources::{EnergyBudgetStatus, RunUsageSummary, TrialRunSpec};

pub use crate::config::UsageConfig;

use crate::audit::{AuditLog, Draft, Outcome};
use crate::catalogue;
use crate::cluster::{Cluster, SYSTEM_PRINCIPAL};
use crate::energy::{CarbonParams, EnergyError, Ledger, PowerModel, PrometheusClient};
use crate::runs::{self, RunFigures};
use crate::store::{
    LedgerQuery, RunRow, Store, StoreError, TrialResultRow, parse_timestamp, timestamp,
};
use crate::tenants::Directory;
use collect::{RunSpan, Scope, Source};

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Energy(#[from] EnergyError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("audit: {0}")]
    Audit(String),
}

/// What one pass did (for logs and tests).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassReport {
    pub windows: usize,
    pub closed: Vec<String>,
}

pub struct Accountant {
    store: Store,
    audit: AuditLog,
    cluster: Option<Arc<Cluster>>,
    source: Source,
    ledger: Ledger,
    model: PowerModel,
    pub carbon: CarbonParams,
    /// Signs the results runs attach to the catalogue (the audit checkpoints' key):
    /// only signed results count as measured.
    signer: Option<Arc<serre_crypto::CertificateSigner>>,
}

impl Accountant {
    pub fn new(
        config: &UsageConfig,
        store: Store,
        audit: AuditLog,
        cluster: Option<Arc<Cluster>>,
    ) -> Result<Self, EnergyError> {
        let source = match &config.prometheus_url {
            Some(url) => Source::Prometheus(PrometheusClient::new(url, config.prometheus_timeout)?),
            None => Source::Declared,
        };
        Ok(Self {
            store,
            audit,
            cluster,
            source,
            ledger: config.ledger(),
            model: config.model(),
            carbon: config.carbon(),
            signer: None,
        })
    }

    /// Sign the results attached to the catalogue with `signer`.
    pub fn with_signer(mut self, signer: Arc<serre_crypto::CertificateSigner>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The power model modelled figures come from.
    pub fn model(&self) -> &PowerModel {
        &self.model
    }

    /// Whether figures are modelled from requests (no metrics source configured).
    pub fn declared(&self) -> bool {
        matches!(self.source, Source::Declared)
    }

    /// Follow runs, record every settled window, close finished runs, warn on budgets.
    pub async fn pass(
        &self,
        now: DateTime<Utc>,
        tenants: &Directory,
    ) -> Result<PassReport, UsageError> {
        self.follow_runs(now).await?;
        let open = self.store.open_runs().await?;
        let scope = self.scope(&open);
        let mut report = PassReport::default();
        let cursor = self.store.usage_cursor().await?;
        for window in self.ledger.plan(cursor, now) {
            let rows =
                collect::window_rows(&self.source, window, &scope, &self.model, &self.carbon)
                    .await?;
            self.store.record_usage_window(window.end, &rows).await?;
            report.windows += 1;
        }
        let cursor = self.store.usage_cursor().await?;
        for run in &open {
            if self.close_if_covered(run, cursor, now).await? {
                report.closed.push(run.name.clone());
            }
        }
        self.warn_budgets(now, tenants).await?;
        Ok(report)
    }

    /// Copy each open run's phase and times from its TrialRun. A run whose TrialRun is
    /// gone (deleted with its sandbox) ends as Cancelled.
    async fn follow_runs(&self, now: DateTime<Utc>) -> Result<(), UsageError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        for run in self.store.open_runs().await? {
            if runs::is_final(&run.phase) {
                continue;
            }
            match runs::cluster::get(cluster.client(), &run.namespace, &run.name).await {
                Ok(Some(tr)) => {
                    let Some(st) = tr.status else { continue };
                    let phase = format!("{:?}", st.phase);
                    let started = st.started_at.map(timestamp);
                    let finished = st.finished_at.map(timestamp).or_else(|| {
                        // A run stopped before it started ends now.
                        st.phase
                            .is_final()
                            .then(|| timestamp(now))
                            .filter(|_| started.is_some())
                    });
                    if st.phase.is_final() {
                        self.forget_token(cluster, &run).await;
                    }
                    if phase != run.phase
                        || started != run.started_at
                        || finished != run.finished_at
                    {
                        self.store
                            .update_run_state(
                                &run.name,
                                &phase,
                                started.as_deref(),
                                finished.as_deref(),
                                st.exit_reason.as_deref(),
                            )
                            .await?;
                    }
                }
                // The gateway records a run just before it creates its TrialRun: a run
                // younger than a minute may not have one yet.
                Ok(None) if recently_created(&run.created_at, now) => {}
                Ok(None) => {
                    let finished = run.started_at.as_ref().map(|_| timestamp(now));
                    self.store
                        .update_run_state(
                            &run.name,
                            "Cancelled",
                            run.started_at.as_deref(),
                            finished.as_deref(),
                            Some("the TrialRun was deleted"),
                        )
                        .await?;
                }
                Err(e) => tracing::debug!(run = %run.name, error = %e, "could not read the run"),
            }
        }
        Ok(())
    }

    /// Delete the Secret of a run's token once the run is over (the token is refused from
    /// then on anyway). A failure is logged and retried when the run closes.
    async fn forget_token(&self, cluster: &Cluster, run: &RunRow) {
        if let Err(e) =
            runs::cluster::delete_token(cluster.client(), &run.namespace, &run.name).await
        {
            tracing::warn!(run = %run.name, error = %e, "could not delete the run's token Secret");
        }
    }

    fn scope(&self, open: &[RunRow]) -> Scope {
        let mut tenants = BTreeMap::new();
        let mut storage_bytes = BTreeMap::new();
        if let Some(cluster) = &self.cluster {
            for s in cluster.sandboxes() {
                let Some(st) = s.status.as_ref() else {
                    continue;
                };
                if let Some(ns) = st.namespace.clone() {
                    if let Some(used) = st.storage.as_ref().and_then(|x| x.used.as_ref()) {
                        storage_bytes.insert(ns.clone(), used.bytes);
                    }
                    tenants.insert(ns, s.spec.tenant.clone());
                }
            }
        }
        let mut spans = Vec::new();
        for run in open {
            tenants.insert(run.namespace.clone(), run.tenant.clone());
            if let Some(span) = span_of(run) {
                spans.push(span);
            }
        }
        Scope {
            tenants,
            runs: spans,
            storage_bytes,
        }
    }

    /// Close a final run once the ledger covers its end: figures, status, catalogue.
    async fn close_if_covered(
        &self,
        run: &RunRow,
        cursor: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, UsageError> {
        let Some(run) = self.store.get_run(&run.name).await? else {
            return Ok(false);
        };
        if !runs::is_final(&run.phase) || run.closed_at.is_some() {
            return Ok(false);
        }
        let finished = run.finished_at.as_deref().and_then(parse_timestamp);
        if let Some(end) = finished
            && cursor.is_none_or(|c| c < end)
        {
            return Ok(false);
        }
        self.settle_unsampled(&run, now).await?;
        let figures = self.figures(&run).await?;
        let summary = serde_json::to_string(&figures).unwrap_or_default();
        if !self
            .store
            .close_run(&run.name, &summary, &timestamp(now))
            .await?
        {
            return Ok(false);
        }
        if let Some(cluster) = &self.cluster {
            // Already deleted when the run ended, unless that failed (or the gateway
            // cancelled the run itself): no token outlives its run's closing.
            self.forget_token(cluster, &run).await;
            let usage = RunUsageSummary {
                duration_seconds: figures.duration_seconds,
                cpu_core_seconds: figures.figures.get("cpu_used").map_or(0.0, |f| f.value),
                gpu_seconds: figures.figures.get("gpu_time").map_or(0.0, |f| f.value),
                energy_kwh: figures.kwh,
                emissions_gco2e: figures.gco2e + figures.embodied_gco2e,
                method: figures.energy_method.clone(),
            };
            if let Err(e) =
                runs::cluster::set_usage(cluster.client(), &run.namespace, &run.name, &usage).await
            {
                tracing::warn!(run = %run.name, error = %e, "could not record usage in the run's status");
            }
        }
        // Read again: the quality the run carries is final once it is closed.
        let run = self.store.get_run(&run.name).await?.unwrap_or(run);
        let outcome = self.attach(&run, &figures, now).await?;
        let attached = matches!(outcome, Attach::Attached);
        let refused = match &outcome {
            Attach::Refused(m) => {
                serde_json::json!({ "rule": catalogue::OPEN_FOR_TRIALS, "message": m })
            }
            _ => serde_json::Value::Null,
        };
        let mut draft = Draft::new(
            SYSTEM_PRINCIPAL,
            "run.closed",
            format!("Run::{:?}", run.name),
            Outcome::Change,
        );
        draft.tenant = Some(run.tenant.clone());
        draft.details = serde_json::json!({
            "phase": run.phase, "kwh": figures.kwh, "gco2e": figures.gco2e,
            "method": figures.energy_method, "catalogue": attached,
            "catalogueRefused": refused,
        });
        self.audit
            .append(vec![draft])
            .await
            .map_err(|e| UsageError::Audit(e.to_string()))?;
        Ok(true)
    }

    /// A finished run of which cAdvisor did not sample the trial container enough to
    /// measure it ([`collect::Coverage::measures`]: fewer than two samples, or none in its
    /// last 30 s): its windows hold at most its init step's figures and part of its own,
    /// so its rows become its requests × its running time, flagged modelled
    /// ([`collect::modelled_run_rows`]). Measured runs, and every run without a metrics
    /// source (already modelled from its requests), are left as they are.
    async fn settle_unsampled(&self, run: &RunRow, now: DateTime<Utc>) -> Result<(), UsageError> {
        let Source::Prometheus(client) = &self.source else {
            return Ok(());
        };
        let Some(span) = span_of(run).filter(|s| s.finished.is_some()) else {
            return Ok(());
        };
        let coverage = collect::trial_coverage(client, &span, now).await?;
        if span.finished.is_some_and(|end| coverage.measures(end)) {
            return Ok(());
        }
        let rows = collect::modelled_run_rows(&span, &self.model, &self.carbon)?;
        tracing::info!(run = %run.name, samples = coverage.samples, "cAdvisor did not sample the run's trial container enough to measure it: its figures are its requests × its running time, flagged modelled");
        self.store.replace_run_rows(&run.name, &rows).await?;
        Ok(())
    }

    /// A run's figures from its ledger rows (zero when it never started).
    pub async fn figures(&self, run: &RunRow) -> Result<RunFigures, UsageError> {
        let rows = self
            .store
            .ledger_rows(&LedgerQuery {
                run: Some(&run.name),
                ..LedgerQuery::default()
            })
            .await?;
        let spec: Option<TrialRunSpec> = serde_json::from_str(&run.spec_json).ok();
        let unit = spec
            .as_ref()
            .and_then(|s| s.functional_unit.as_ref())
            .map(|u| (u.name.as_str(), u.count));
        let started = run.started_at.as_deref().and_then(parse_timestamp);
        let ended = run
            .finished_at
            .as_deref()
            .and_then(parse_timestamp)
            .or(started.map(|_| Utc::now()));
        let duration = match (started, ended) {
            (Some(s), Some(e)) => (e - s).num_milliseconds().max(0) as f64 / 1000.0,
            _ => 0.0,
        };
        Ok(runs::figures::summarise(&rows, duration, unit))
    }

    /// Attach a succeeded run's figures to its catalogue solution, if its requester may
    /// feed that solution ([`catalogue::open_for_trials`], checked again here: the
    /// solution may have changed since the run started).
    async fn attach(
        &self,
        run: &RunRow,
        figures: &RunFigures,
        now: DateTime<Utc>,
    ) -> Result<Attach, UsageError> {
        let Some(solution) = &run.solution else {
            return Ok(Attach::NotApplicable);
        };
        if run.phase != "Succeeded" {
            return Ok(Attach::NotApplicable);
        }
        let Some(entry) = self.store.get_solution(solution).await? else {
            return Ok(Attach::NotApplicable);
        };
        if let Err(m) = catalogue::open_for_trials(&entry, &run.requested_by) {
            return Ok(Attach::Refused(m));
        }
        let spec: Option<TrialRunSpec> = serde_json::from_str(&run.spec_json).ok();
        let Some(spec) = spec else {
            return Ok(Attach::NotApplicable);
        };
        let value = |q: &str| figures.figures.get(q).map_or(0.0, |f| f.value);
        let method: serde_json::Map<String, serde_json::Value> = figures
            .figures
            .iter()
            .filter(|(q, _)| q.ends_with("_energy") || q.ends_with("_emissions"))
            .map(|(q, f)| (q.clone(), serde_json::Value::String(f.method.clone())))
            .chain([(
                "estimated".to_owned(),
                serde_json::Value::Bool(figures.energy_method == "modelled"),
            )])
            .chain(
                figures
                    .functional_unit
                    .clone()
                    .map(|u| ("functionalUnit".to_owned(), serde_json::Value::String(u))),
            )
            .collect();
        let mut row = TrialResultRow {
            id: uuid::Uuid::new_v4().to_string(),
            solution_id: solution.clone(),
            run_id: run.name.clone(),
            tenant: run.tenant.clone(),
            sandbox: run.sandbox.clone(),
            phase: runs::catalogue_phase(spec.kind).to_owned(),
            kwh: figures.kwh,
            gco2e: figures.gco2e + figures.embodied_gco2e,
            duration_s: figures.duration_seconds,
            functional_units: figures.functional_units.map(|n| n as f64),
            quality_metric: run.quality_metric.clone(),
            quality_value: run.quality_value,
            measured_at: run.finished_at.clone().unwrap_or_else(|| timestamp(now)),
            method_json: serde_json::Value::Object(method).to_string(),
            recorded_by: catalogue::RUN_RECORDER.to_owned(),
            recorded_at: timestamp(now),
            resources_json: Some(
                serde_json::json!({
                    "cpuCoreSeconds": value("cpu_used"),
                    "cpuChargedCoreSeconds": value("cpu_charged"),
                    "memoryGbSeconds": value("memory_charged"),
                    "gpuSeconds": value("gpu_time"),
                    "requested": {"cpu": spec.resources.cpu, "memory": spec.resources.memory,
                        "gpus": spec.resources.gpu.as_ref().map_or(0, |g| g.count)},
                })
                .to_string(),
            ),
            signature: None,
            key_id: None,
        };
        if let Some(signer) = &self.signer {
            catalogue::attestation::sign(signer, &mut row);
        }
        match self.store.attach_trial_result(&row).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(Attach::Attached),
            Err(e) => Err(e.into()),
        }
    }

    /// Audit (and publish as a Kubernetes Event) once per tenant, month and level.
    async fn warn_budgets(
        &self,
        now: DateTime<Utc>,
        tenants: &Directory,
    ) -> Result<(), UsageError> {
        for tenant in tenants.all() {
            let name = tenant.metadata.name.clone().unwrap_or_default();
            let Some(budget) = tenant.spec.energy_budget_kwh else {
                continue;
            };
            let (from, to) = budget::month(now);
            let used = self.store.tenant_meter_kwh(&name, from, to).await?;
            let state = budget::state(now, Some(budget), used);
            if let Some(cluster) = &self.cluster {
                let level = match state.level {
                    budget::BudgetLevel::Exhausted => "exhausted",
                    budget::BudgetLevel::Warning => "warning",
                    _ => "ok",
                };
                let known = tenant.status.as_ref().and_then(|s| s.energy.as_ref());
                let stale = known.is_none_or(|k| {
                    k.level != level
                        || k.month != from
                        || (k.used_kwh - used).abs() > 0.005 * budget
                });
                if stale {
                    let energy = EnergyBudgetStatus {
                        month: from,
                        used_kwh: used,
                        budget_kwh: budget,
                        level: level.to_owned(),
                        updated_at: now,
                    };
                    if let Err(e) = cluster.set_tenant_energy(&name, &energy).await {
                        tracing::warn!(tenant = %name, error = %e, "could not record the energy budget in the Tenant's status");
                    }
                }
            }
            let level = match state.level {
                budget::BudgetLevel::Warning => "warning",
                budget::BudgetLevel::Exhausted => "exhausted",
                _ => continue,
            };
            // Once per tenant, month and level, across restarts and replicas: the database
            // row is the claim.
            if !self
                .store
                .claim_budget_warning(&name, from, level, now)
                .await?
            {
                continue;
            }
            let message = format!(
                "Tenant {name:?} has used {used:.3} kWh of its {budget} kWh energy budget this month ({:.0} %){}",
                state.share.unwrap_or(1.0) * 100.0,
                if level == "exhausted" {
                    "; new trial runs are refused until next month or a raised budget"
                } else {
                    ""
                }
            );
            tracing::warn!(tenant = %name, %level, "{message}");
            let mut draft = Draft::new(
                SYSTEM_PRINCIPAL,
                "usage.budget",
                format!("Tenant::{name:?}"),
                Outcome::Change,
            );
            draft.tenant = Some(name.clone());
            draft.details = serde_json::json!({ "level": level, "usedKwh": used, "budgetKwh": budget, "message": message });
            self.audit
                .append(vec![draft])
                .await
                .map_err(|e| UsageError::Audit(e.to_string()))?;
            if let Some(cluster) = &self.cluster {
                cluster.tenant_event(&tenant, level, &message).await;
            }
        }
        Ok(())
    }
}

/// What closing a run did with the catalogue.
enum Attach {
    /// No solution, not succeeded, or no such entry.
    NotApplicable,
    Attached,
    /// The requester may not feed the solution (the message says why).
    Refused(String),
}

/// The accounting's view of a started run.
fn span_of(run: &RunRow) -> Option<RunSpan> {
    let started = parse_timestamp(run.started_at.as_deref()?)?;
    let spec: TrialRunSpec = serde_json::from_str(&run.spec_json).ok()?;
    let cores = spec
        .resources
        .cpu
        .parse::<Quantity>()
        .map(|q| q.milli() as f64 / 1000.0)
        .unwrap_or(0.0);
    let memory_gb = spec
        .resources
        .memory
        .parse::<Quantity>()
        .map(|q| q.milli() as f64 / 1e12)
        .unwrap_or(0.0);
    Some(RunSpan {
        name: run.name.clone(),
        namespace: run.namespace.clone(),
        tenant: run.tenant.clone(),
        started,
        finished: run.finished_at.as_deref().and_then(parse_timestamp),
        cpu_cores: cores,
        memory_gb,
        gpus: spec.resources.gpu.map_or(0.0, |g| f64::from(g.count)),
    })
}

/// Whether a run was recorded less than a minute before `now` (an unreadable time is not).
fn recently_created(created_at: &str, now: DateTime<Utc>) -> bool {
    parse_timestamp(created_at).is_some_and(|c| now - c < chrono::Duration::seconds(60))
}
