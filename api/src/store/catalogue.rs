//! The catalogue of AI solutions and the measured trial results attached to its entries.

use super::rows::row;
use super::{Pool, Store, StoreError};

row! {
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct SolutionRow {
        pub id: String,
        pub status: String,
        pub vendor: String,
        pub name: String,
        pub version: String,
        pub description: String,
        pub licence_spdx: String,
        pub hosting_provider: String,
        pub hosting_location: String,
        pub extra_eu_transfer: bool,
        pub ai_act_risk_class: String,
        pub gdpr_notes: String,
        pub criteria_json: String,
        pub proposed_by: Option<String>,
        pub created_by: String,
        pub created_at: String,
        pub updated_by: String,
        pub updated_at: String,
        pub published_at: Option<String>,
    }
}

row! {
    /// One measured phase of one trial run of a solution.
    #[derive(Clone, Debug, PartialEq)]
    pub struct TrialResultRow {
        pub id: String,
        pub solution_id: String,
        pub run_id: String,
        pub tenant: String,
        pub sandbox: String,
        /// training, fine-tuning, inference or evaluation.
        pub phase: String,
        pub kwh: f64,
        pub gco2e: f64,
        pub duration_s: f64,
        pub functional_units: Option<f64>,
        pub quality_metric: Option<String>,
        pub quality_value: Option<f64>,
        pub measured_at: String,
        /// JSON object of method flags.
        pub method_json: String,
        pub recorded_by: String,
        pub recorded_at: String,
        /// JSON object of the resources used (`cpuCoreSeconds`, `memoryGbSeconds`,
        /// `gpuSeconds`), when known.
        pub resources_json: Option<String>,
        /// The gateway's Ed25519 signature (standard base64) over the result's canonical
        /// form (`catalogue::attestation`); null for hand-entered (declared) results.
        pub signature: Option<String>,
        /// The signing key's id (`ed25519:<16 hex>`).
        pub key_id: Option<String>,
    }
}

macro_rules! bind_solution {
    ($q:expr, $s:expr) => {
        $q.bind(&$s.status)
            .bind(&$s.vendor)
            .bind(&$s.name)
            .bind(&$s.version)
            .bind(&$s.description)
            .bind(&$s.licence_spdx)
            .bind(&$s.hosting_provider)
            .bind(&$s.hosting_location)
            .bind($s.extra_eu_transfer)
            .bind(&$s.ai_act_risk_class)
            .bind(&$s.gdpr_notes)
            .bind(&$s.criteria_json)
            .bind(&$s.updated_by)
            .bind(&$s.updated_at)
            .bind(&$s.published_at)
            .bind(&$s.id)
    };
}

fn duplicate(s: &SolutionRow) -> StoreError {
    StoreError::Conflict(format!(
        "the catalogue already has {:?} {:?} version {:?}",
        s.vendor, s.name, s.version
    ))
}

impl Store {
    pub async fn insert_solution(&self, s: &SolutionRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO catalogue_solutions (status, vendor, name, version, \
            description, licence_spdx, hosting_provider, hosting_location, extra_eu_transfer, \
            ai_act_risk_class, gdpr_notes, criteria_json, updated_by, updated_at, published_at, \
            id, proposed_by, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
            $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";
        let result = run!(self, |p| bind_solution!(sqlx::query(SQL), s)
            .bind(&s.proposed_by)
            .bind(&s.created_by)
            .bind(&s.created_at)
            .execute(p)
            .await
            .map(|_| ()));
        match result.map_err(StoreError::from) {
            Err(StoreError::Conflict(_)) => Err(duplicate(s)),
            other => other,
        }
    }

    pub async fn get_solution(&self, id: &str) -> Result<Option<SolutionRow>, StoreError> {
        const SQL: &str = "SELECT * FROM catalogue_solutions WHERE id = $1";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    /// Every entry, by vendor, name and version (callers filter by what the principal may
    /// see); only the published ones with `published_only`.
    pub async fn list_solutions(
        &self,
        published_only: bool,
    ) -> Result<Vec<SolutionRow>, StoreError> {
        const ALL: &str = "SELECT * FROM catalogue_solutions ORDER BY vendor, name, version, id";
        const PUBLISHED: &str = "SELECT * FROM catalogue_solutions WHERE status = 'published' \
            ORDER BY vendor, name, version, id";
        let sql = if published_only { PUBLISHED } else { ALL };
        Ok(run!(self, |p| sqlx::query_as(sql).fetch_all(p).await)?)
    }

    /// Replace an entry's editable fields, provided nobody changed it since `seen_at`
    /// (its `updated_at` when it was read); false when somebody did.
    pub async fn update_solution(
        &self,
        s: &SolutionRow,
        seen_at: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE catalogue_solutions SET status = $1, vendor = $2, name = $3, \
            version = $4, description = $5, licence_spdx = $6, hosting_provider = $7, \
            hosting_location = $8, extra_eu_transfer = $9, ai_act_risk_class = $10, \
            gdpr_notes = $11, criteria_json = $12, updated_by = $13, updated_at = $14, \
            published_at = $15 WHERE id = $16 AND updated_at = $17";
        let result = run!(self, |p| bind_solution!(sqlx::query(SQL), s)
            .bind(seen_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()));
        match result.map_err(StoreError::from) {
            Err(StoreError::Conflict(_)) => Err(duplicate(s)),
            Err(e) => Err(e),
            Ok(n) => Ok(n == 1),
        }
    }

    /// Attach one measured trial result to a solution (the attach point of the trial-run
    /// controller). A second result for the same run and phase is a conflict.
    pub async fn attach_trial_result(&self, r: &TrialResultRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO catalogue_trial_results (id, solution_id, run_id, \
            tenant, sandbox, phase, kwh, gco2e, duration_s, functional_units, quality_metric, \
            quality_value, measured_at, method_json, recorded_by, recorded_at, resources_json, \
            signature, key_id) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
            $18, $19)";
        let result = run!(self, |p| sqlx::query(SQL)
            .bind(&r.id)
            .bind(&r.solution_id)
            .bind(&r.run_id)
            .bind(&r.tenant)
            .bind(&r.sandbox)
            .bind(&r.phase)
            .bind(r.kwh)
            .bind(r.gco2e)
            .bind(r.duration_s)
            .bind(r.functional_units)
            .bind(&r.quality_metric)
            .bind(r.quality_value)
            .bind(&r.measured_at)
            .bind(&r.method_json)
            .bind(&r.recorded_by)
            .bind(&r.recorded_at)
            .bind(&r.resources_json)
            .bind(&r.signature)
            .bind(&r.key_id)
            .execute(p)
            .await
            .map(|_| ()));
        match result.map_err(StoreError::from) {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                "run {:?} already has a {} result for this solution",
                r.run_id, r.phase
            ))),
            other => other,
        }
    }

    /// Every solution's trial results, by solution (for lists and exports: one query).
    pub async fn trial_results_by_solution(
        &self,
    ) -> Result<std::collections::HashMap<String, Vec<TrialResultRow>>, StoreError> {
        const SQL: &str = "SELECT * FROM catalogue_trial_results \
            ORDER BY solution_id, measured_at, run_id, phase";
        let rows: Vec<TrialResultRow> = run!(self, |p| sqlx::query_as(SQL).fetch_all(p).await)?;
        let mut out: std::collections::HashMap<String, Vec<TrialResultRow>> =
            std::collections::HashMap::new();
        for r in rows {
            out.entry(r.solution_id.clone()).or_default().push(r);
        }
        Ok(out)
    }

    /// A solution's trial results, oldest measurement first.
    pub async fn list_trial_results(
        &self,
        solution_id: &str,
    ) -> Result<Vec<TrialResultRow>, StoreError> {
        const SQL: &str = "SELECT * FROM catalogue_trial_results WHERE solution_id = $1 \
            ORDER BY measured_at, run_id, phase";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(solution_id)
            .fetch_all(p)
            .await)?)
    }
}
