//! The usage ledger (windows of compute and energy figures, with the collection cursor)
//! and the trial runs requested through the gateway.

use chrono::{DateTime, Utc};

use super::rows::row;
use super::{Pool, Store, StoreError, parse_timestamp, timestamp};
use crate::energy::LedgerRow;

row! {
    /// A trial run as recorded by the gateway.
    #[derive(Clone, Debug, PartialEq)]
    pub struct RunRow {
        pub name: String,
        pub namespace: String,
        pub sandbox: String,
        pub tenant: String,
        pub solution: Option<String>,
        pub kind: String,
        pub requested_by: String,
        /// The `TrialRunSpec` as JSON.
        pub spec_json: String,
        pub created_at: String,
        pub phase: String,
        pub started_at: Option<String>,
        pub finished_at: Option<String>,
        pub exit_reason: Option<String>,
        /// The run's figures once final (JSON of `runs::RunFigures`).
        pub summary_json: Option<String>,
        pub closed_at: Option<String>,
        /// The quality the requester reported (e.g. `rougeL` 0.41), if any.
        pub quality_metric: Option<String>,
        pub quality_value: Option<f64>,
    }
}

row! {
    struct LedgerRecord {
        window_start: String,
        window_end: String,
        tenant: String,
        namespace: String,
        run: String,
        quantity: String,
        value: f64,
        unit: String,
        method: String,
        source: String,
    }
}

impl LedgerRecord {
    fn into_row(self) -> Result<LedgerRow, StoreError> {
        let t = |s: &str| {
            parse_timestamp(s)
                .ok_or_else(|| StoreError::Corrupt(format!("ledger time {s:?} is not RFC 3339")))
        };
        Ok(LedgerRow {
            window_start: t(&self.window_start)?,
            window_end: t(&self.window_end)?,
            tenant: self.tenant,
            namespace: self.namespace,
            run: self.run,
            quantity: self.quantity,
            value: self.value,
            unit: self.unit,
            method: self.method,
            source: self.source,
        })
    }
}

/// Which ledger rows to read: every filter is optional; times bound `window_start`.
#[derive(Clone, Debug, Default)]
pub struct LedgerQuery<'a> {
    pub tenant: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// `Some("")`: namespace totals only; `Some(run)`: that run's rows.
    pub run: Option<&'a str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One ledger row; recording a row again (same window, namespace, run and quantity)
/// replaces it.
const INSERT_LEDGER_ROW: &str = "INSERT INTO usage_ledger (window_start, window_end, tenant, \
    namespace, run, quantity, value, unit, method, source) VALUES ($1, $2, $3, $4, $5, $6, \
    $7, $8, $9, $10) ON CONFLICT (window_start, namespace, run, quantity) DO UPDATE SET \
    window_end = excluded.window_end, tenant = excluded.tenant, value = excluded.value, \
    unit = excluded.unit, method = excluded.method, source = excluded.source";

/// Bind a ledger row to [`INSERT_LEDGER_ROW`] and run it in `$tx`.
macro_rules! insert_ledger_row {
    ($tx:expr, $r:expr) => {
        sqlx::query(INSERT_LEDGER_ROW)
            .bind(timestamp($r.window_start))
            .bind(timestamp($r.window_end))
            .bind(&$r.tenant)
            .bind(&$r.namespace)
            .bind(&$r.run)
            .bind(&$r.quantity)
            .bind($r.value)
            .bind(&$r.unit)
            .bind(&$r.method)
            .bind(&$r.source)
            .execute(&mut *$tx)
            .await
    };
}

const LEDGER_COLUMNS: &str =
    "window_start, window_end, tenant, namespace, run, quantity, value, unit, method, source";

impl Store {
    /// End of the last window recorded whole.
    pub async fn usage_cursor(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        const SQL: &str = "SELECT last_end FROM usage_cursor WHERE id = 1";
        let row: Option<(String,)> = run!(self, |p| sqlx::query_as(SQL).fetch_optional(p).await)?;
        row.map(|(s,)| {
            parse_timestamp(&s)
                .ok_or_else(|| StoreError::Corrupt(format!("usage cursor {s:?} is not RFC 3339")))
        })
        .transpose()
    }

    /// Record one window's rows and move the cursor to its end, in one transaction: a
    /// window is recorded whole or not at all. Recording a window again replaces it.
    pub async fn record_usage_window(
        &self,
        window_end: DateTime<Utc>,
        rows: &[LedgerRow],
    ) -> Result<(), StoreError> {
        const CURSOR: &str = "INSERT INTO usage_cursor (id, last_end) VALUES (1, $1) \
            ON CONFLICT (id) DO UPDATE SET last_end = excluded.last_end";
        let end = timestamp(window_end);
        run!(self, |p| {
            let mut tx = p.begin().await?;
            for r in rows {
                insert_ledger_row!(tx, r)?;
            }
            sqlx::query(CURSOR).bind(&end).execute(&mut *tx).await?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Replace every ledger row of trial run `run` with `rows` (that run's), in one
    /// transaction; the namespaces' totals are left as they are. For a run whose windows turn out, once
    /// it has ended, not to hold its own figures.
    pub async fn replace_run_rows(&self, run: &str, rows: &[LedgerRow]) -> Result<(), StoreError> {
        const DELETE: &str = "DELETE FROM usage_ledger WHERE run = $1";
        run!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(DELETE).bind(run).execute(&mut *tx).await?;
            for r in rows {
                insert_ledger_row!(tx, r)?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// Claim the energy budget warning of `tenant` for the month starting at `month` at
    /// `level`: true for the first caller only (the one that gives the warning), false for
    /// every later one, whether another replica or this gateway before a restart.
    pub async fn claim_budget_warning(
        &self,
        tenant: &str,
        month: DateTime<Utc>,
        level: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO budget_warnings (tenant, month, level, warned_at) \
            VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, month, level) DO NOTHING";
        let (month, now) = (timestamp(month), timestamp(now));
        let inserted = run!(self, |p| sqlx::query(SQL)
            .bind(tenant)
            .bind(&month)
            .bind(level)
            .bind(&now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(inserted == 1)
    }

    /// Ledger rows in window order.
    pub async fn ledger_rows(&self, q: &LedgerQuery<'_>) -> Result<Vec<LedgerRow>, StoreError> {
        let head = format!("SELECT {LEDGER_COLUMNS} FROM usage_ledger WHERE 1 = 1");
        let text = |v: Option<&str>| v.map(str::to_owned);
        let filters = [
            (" AND tenant = ", text(q.tenant)),
            (" AND namespace = ", text(q.namespace)),
            (" AND run = ", text(q.run)),
            (" AND window_start >= ", q.from.map(timestamp)),
            (" AND window_start < ", q.to.map(timestamp)),
        ];
        let records: Vec<LedgerRecord> = run!(self, |p| {
            let mut qb = sqlx::QueryBuilder::new(head.as_str());
            for (clause, value) in &filters {
                if let Some(v) = value {
                    qb.push(*clause).push_bind(v.clone());
                }
            }
            qb.push(" ORDER BY window_start, namespace, run, quantity");
            qb.build_query_as().fetch_all(p).await
        })?;
        records.into_iter().map(LedgerRecord::into_row).collect()
    }

    /// A tenant's energy at the meter (kWh, namespace totals) in `[from, to)`.
    pub async fn tenant_meter_kwh(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<f64, StoreError> {
        const SQL: &str = "SELECT COALESCE(SUM(value), 0.0) FROM usage_ledger WHERE tenant = $1 \
            AND run = '' AND quantity = 'meter_energy' AND window_start >= $2 \
            AND window_start < $3";
        let (kwh,): (f64,) = run!(self, |p| sqlx::query_as(SQL)
            .bind(tenant)
            .bind(timestamp(from))
            .bind(timestamp(to))
            .fetch_one(p)
            .await)?;
        Ok(kwh)
    }

    // ---- Trial runs --------------------------------------------------------------------

    pub async fn insert_run(&self, r: &RunRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO trial_runs (name, namespace, sandbox, tenant, solution, \
            kind, requested_by, spec_json, created_at, phase) VALUES ($1, $2, $3, $4, $5, $6, \
            $7, $8, $9, $10)";
        run!(self, |p| sqlx::query(SQL)
            .bind(&r.name)
            .bind(&r.namespace)
            .bind(&r.sandbox)
            .bind(&r.tenant)
            .bind(&r.solution)
            .bind(&r.kind)
            .bind(&r.requested_by)
            .bind(&r.spec_json)
            .bind(&r.created_at)
            .bind(&r.phase)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Remove a run that never reached the cluster.
    pub async fn delete_run(&self, name: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM trial_runs WHERE name = $1";
        run!(self, |p| sqlx::query(SQL)
            .bind(name)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn get_run(&self, name: &str) -> Result<Option<RunRow>, StoreError> {
        const SQL: &str = "SELECT * FROM trial_runs WHERE name = $1";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(name)
            .fetch_optional(p)
            .await)?)
    }

    /// A sandbox's runs, newest first.
    pub async fn list_runs(&self, sandbox: &str) -> Result<Vec<RunRow>, StoreError> {
        const SQL: &str =
            "SELECT * FROM trial_runs WHERE sandbox = $1 ORDER BY created_at DESC, name";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(sandbox)
            .fetch_all(p)
            .await)?)
    }

    /// Runs not closed yet (the accounting follows them).
    pub async fn open_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        const SQL: &str = "SELECT * FROM trial_runs WHERE closed_at IS NULL ORDER BY created_at";
        Ok(run!(self, |p| sqlx::query_as(SQL).fetch_all(p).await)?)
    }

    /// Closed runs of a solution, oldest first (for comparisons in reports).
    pub async fn closed_runs_of_solution(&self, solution: &str) -> Result<Vec<RunRow>, StoreError> {
        const SQL: &str = "SELECT * FROM trial_runs WHERE solution = $1 AND closed_at IS NOT \
            NULL ORDER BY created_at, name";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(solution)
            .fetch_all(p)
            .await)?)
    }

    /// Follow the cluster's status of an open run.
    pub async fn update_run_state(
        &self,
        name: &str,
        phase: &str,
        started_at: Option<&str>,
        finished_at: Option<&str>,
        exit_reason: Option<&str>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE trial_runs SET phase = $1, started_at = $2, finished_at = $3, \
            exit_reason = $4 WHERE name = $5 AND closed_at IS NULL";
        run!(self, |p| sqlx::query(SQL)
            .bind(phase)
            .bind(started_at)
            .bind(finished_at)
            .bind(exit_reason)
            .bind(name)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Record the quality the requester reported for a run, unless the run is closed and
    /// names a catalogue solution (its result, attached when it closed, is immutable);
    /// false then. One statement, so a run closing meanwhile cannot take a quality its
    /// attached result does not carry.
    pub async fn set_run_quality(
        &self,
        name: &str,
        metric: &str,
        value: f64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE trial_runs SET quality_metric = $1, quality_value = $2 \
            WHERE name = $3 AND (closed_at IS NULL OR solution IS NULL)";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(metric)
            .bind(value)
            .bind(name)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Close a run with its final figures; false when it was closed already.
    pub async fn close_run(
        &self,
        name: &str,
        summary_json: &str,
        closed_at: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE trial_runs SET summary_json = $1, closed_at = $2 \
            WHERE name = $3 AND closed_at IS NULL";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(summary_json)
            .bind(closed_at)
            .bind(name)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Record the practice checklist a run's requester answered (JSON of
    /// `runs::frugality::PracticeAnswers`), replacing earlier answers, unless the run is
    /// closed and names a catalogue solution (as for its quality); false then, or when
    /// there is no such run. One statement.
    pub async fn set_run_practices(
        &self,
        name: &str,
        answers_json: &str,
        answered_by: &str,
        answered_at: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO run_practices (run, answers_json, answered_by, answered_at) \
            SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM trial_runs WHERE name = $1 \
            AND (closed_at IS NULL OR solution IS NULL)) \
            ON CONFLICT (run) DO UPDATE SET answers_json = excluded.answers_json, \
            answered_by = excluded.answered_by, answered_at = excluded.answered_at";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(name)
            .bind(answers_json)
            .bind(answered_by)
            .bind(answered_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// A run's checklist answers: (answers JSON, answered by, answered at).
    pub async fn run_practices(
        &self,
        name: &str,
    ) -> Result<Option<(String, String, String)>, StoreError> {
        const SQL: &str =
            "SELECT answers_json, answered_by, answered_at FROM run_practices WHERE run = $1";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(name)
            .fetch_optional(p)
            .await)?)
    }
}
