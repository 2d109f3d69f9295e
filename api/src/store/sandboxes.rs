//! Sandbox requests (their decisions, members and pushes to the cluster) and tenants'
//! self-service policies.

use super::{MemberRow, Pool, SandboxRecord, SandboxRow, Store, StoreError, TenantPolicyRow};

impl Store {
    pub async fn insert_sandbox(&self, s: &SandboxRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO sandboxes (name, tenant, spec, state, self_service, \
            created_by, created_at, decided_by, decided_at, decision_reason, approval_reasons, \
            version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
        let result = run!(self, |p| sqlx::query(SQL)
            .bind(&s.name)
            .bind(&s.tenant)
            .bind(&s.spec)
            .bind(&s.state)
            .bind(s.self_service)
            .bind(&s.created_by)
            .bind(&s.created_at)
            .bind(&s.decided_by)
            .bind(&s.decided_at)
            .bind(&s.decision_reason)
            .bind(&s.approval_reasons)
            .bind(s.version)
            .execute(p)
            .await
            .map(|_| ()));
        match result.map_err(StoreError::from) {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                "a sandbox named {:?} already exists",
                s.name
            ))),
            other => other.map(|_| ()),
        }
    }

    /// A sandbox and its vendor members (one query: this is the hot read path).
    pub async fn get_sandbox(&self, name: &str) -> Result<Option<SandboxRecord>, StoreError> {
        if let Some(reader) = &self.reader {
            match reader.sandbox(name) {
                Ok(found) => return Ok(found),
                Err(e) => tracing::debug!(error = %e, "direct SQLite read failed; using the pool"),
            }
        }
        const SQL: &str = "SELECT s.*, m.subject AS m_subject, m.added_by AS m_added_by, \
            m.added_at AS m_added_at FROM sandboxes s \
            LEFT JOIN sandbox_members m ON m.sandbox = s.name \
            WHERE s.name = $1 ORDER BY m.subject";
        let found = run!(self, |p| {
            use sqlx::{FromRow, Row};
            let rows = sqlx::query(SQL).bind(name).fetch_all(p).await?;
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            let row = SandboxRow::from_row(first)?;
            let mut members = Vec::new();
            for r in &rows {
                if let Some(subject) = r.try_get::<Option<String>, _>("m_subject")? {
                    members.push(MemberRow {
                        sandbox: row.name.clone(),
                        subject,
                        added_by: r.try_get("m_added_by")?,
                        added_at: r.try_get("m_added_at")?,
                    });
                }
            }
            Ok::<_, sqlx::Error>(Some(SandboxRecord { row, members }))
        })?;
        Ok(found)
    }

    /// Sandboxes of the given tenants (all tenants with `all`), plus those where
    /// `vendor` is a member. Ordered by name.
    pub async fn list_sandboxes(
        &self,
        tenants: &[String],
        vendor: Option<&str>,
        all: bool,
    ) -> Result<Vec<SandboxRecord>, StoreError> {
        const ALL: &str = "SELECT * FROM sandboxes ORDER BY name";
        const OF_TENANT: &str = "SELECT * FROM sandboxes WHERE tenant = $1 ORDER BY name";
        const OF_VENDOR: &str = "SELECT s.* FROM sandboxes s JOIN sandbox_members m \
            ON m.sandbox = s.name WHERE m.subject = $1 ORDER BY s.name";
        const MEMBERS: &str = "SELECT * FROM sandbox_members ORDER BY sandbox, subject";
        let (mut rows, members) = run!(self, |p| {
            let mut conn = p.acquire().await?;
            let mut rows: Vec<SandboxRow> = Vec::new();
            if all {
                rows = sqlx::query_as(ALL).fetch_all(&mut *conn).await?;
            } else {
                for t in tenants {
                    let mut of: Vec<SandboxRow> = sqlx::query_as(OF_TENANT)
                        .bind(t)
                        .fetch_all(&mut *conn)
                        .await?;
                    rows.append(&mut of);
                }
                if let Some(v) = vendor {
                    let mut of: Vec<SandboxRow> = sqlx::query_as(OF_VENDOR)
                        .bind(v)
                        .fetch_all(&mut *conn)
                        .await?;
                    rows.append(&mut of);
                }
            }
            let members: Vec<MemberRow> = if rows.is_empty() {
                Vec::new()
            } else {
                sqlx::query_as(MEMBERS).fetch_all(&mut *conn).await?
            };
            Ok::<_, sqlx::Error>((rows, members))
        })?;
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows.dedup_by(|a, b| a.name == b.name);
        Ok(rows
            .into_iter()
            .map(|row| {
                let members = members
                    .iter()
                    .filter(|m| m.sandbox == row.name)
                    .cloned()
                    .collect();
                SandboxRecord { row, members }
            })
            .collect())
    }

    /// Set the request state if the row is still at `version`; bumps the version.
    /// Returns false if someone else changed it first.
    pub async fn decide(
        &self,
        name: &str,
        version: i64,
        state: &str,
        by: &str,
        at: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE sandboxes SET state = $1, decided_by = $2, decided_at = $3, \
            decision_reason = $4, version = version + 1 WHERE name = $5 AND version = $6";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(state)
            .bind(by)
            .bind(at)
            .bind(reason)
            .bind(name)
            .bind(version)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Mark a sandbox for deletion from the cluster (optimistic on `version`).
    pub async fn mark_deleting(&self, name: &str, version: i64) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE sandboxes SET state = 'Deleting', version = version + 1 \
            WHERE name = $1 AND version = $2";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(name)
            .bind(version)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    pub async fn delete_sandbox(&self, name: &str) -> Result<bool, StoreError> {
        const MEMBERS: &str = "DELETE FROM sandbox_members WHERE sandbox = $1";
        const SQL: &str = "DELETE FROM sandboxes WHERE name = $1";
        let n = run!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(MEMBERS).bind(name).execute(&mut *tx).await?;
            let n = sqlx::query(SQL)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n)
        })?;
        Ok(n == 1)
    }

    /// Add a vendor member; false if already a member.
    pub async fn add_member(&self, m: &MemberRow) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO sandbox_members (sandbox, subject, added_by, added_at) \
            VALUES ($1, $2, $3, $4) ON CONFLICT (sandbox, subject) DO NOTHING";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(&m.sandbox)
            .bind(&m.subject)
            .bind(&m.added_by)
            .bind(&m.added_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    pub async fn remove_member(&self, sandbox: &str, subject: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM sandbox_members WHERE sandbox = $1 AND subject = $2";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(sandbox)
            .bind(subject)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Requests the cluster has not caught up with: approved ones not applied at their
    /// current version (and not failed at it), and those marked for deletion.
    pub async fn pending_pushes(&self) -> Result<Vec<SandboxRow>, StoreError> {
        const SQL: &str = "SELECT * FROM sandboxes WHERE (state = 'Approved' \
            AND (applied_version IS NULL OR applied_version < version) \
            AND (push_failed_version IS NULL OR push_failed_version < version)) \
            OR state = 'Deleting' ORDER BY created_at";
        Ok(run!(self, |p| sqlx::query_as(SQL).fetch_all(p).await)?)
    }

    pub async fn mark_applied(&self, name: &str, version: i64, at: &str) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE sandboxes SET applied_version = $1, applied_at = $2, \
            push_error = NULL WHERE name = $3 AND version = $1";
        run!(self, |p| sqlx::query(SQL)
            .bind(version)
            .bind(at)
            .bind(name)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn mark_push_failed(
        &self,
        name: &str,
        version: i64,
        message: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE sandboxes SET push_failed_version = $1, push_error = $2 \
            WHERE name = $3 AND version = $1";
        run!(self, |p| sqlx::query(SQL)
            .bind(version)
            .bind(message)
            .bind(name)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    // ---- Tenant self-service policies ------------------------------------------------

    pub async fn tenant_policy(&self, tenant: &str) -> Result<Option<TenantPolicyRow>, StoreError> {
        const SQL: &str = "SELECT * FROM tenant_policies WHERE tenant = $1";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(tenant)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn put_tenant_policy(&self, t: &TenantPolicyRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO tenant_policies (tenant, max_days, allow_gpu, max_cpu, \
            max_memory, max_storage, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
            ON CONFLICT (tenant) DO UPDATE SET max_days = excluded.max_days, \
            allow_gpu = excluded.allow_gpu, max_cpu = excluded.max_cpu, \
            max_memory = excluded.max_memory, max_storage = excluded.max_storage, \
            updated_by = excluded.updated_by, updated_at = excluded.updated_at";
        run!(self, |p| sqlx::query(SQL)
            .bind(&t.tenant)
            .bind(t.max_days)
            .bind(t.allow_gpu)
            .bind(&t.max_cpu)
            .bind(&t.max_memory)
            .bind(&t.max_storage)
            .bind(&t.updated_by)
            .bind(&t.updated_at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
