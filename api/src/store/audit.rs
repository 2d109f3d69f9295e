//! The audit log's rows: head, batched appends, pages (for SQLite file databases the
//! table lives in its own attached file, see [`super::sqlite_audit`]).

use super::{AuditRow, Pool, Store, StoreError};

impl Store {
    /// The last entry's sequence number and hash.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        const SQL: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
        Ok(run!(self, |p| sqlx::query_as(SQL).fetch_optional(p).await)?)
    }

    /// Append entries atomically (one multi-row statement; a transaction when more than
    /// one statement is needed). A sequence number already taken (another replica
    /// appended first) is a [`StoreError::Conflict`].
    pub async fn audit_insert(&self, entries: &[AuditRow]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        const HEAD: &str = "INSERT INTO audit_log (seq, time, principal, tenant, action, \
            resource, decision, policies, request_id, details, prev_hash, hash) ";
        // 12 columns: stay far below SQLite's limit on bound parameters.
        const CHUNK: usize = 512;
        run!(self, |p| {
            if entries.len() <= CHUNK {
                let mut qb = sqlx::QueryBuilder::new(HEAD);
                push_audit_values(&mut qb, entries);
                qb.build().execute(p).await.map(|_| ())
            } else {
                let mut tx = p.begin().await?;
                for chunk in entries.chunks(CHUNK) {
                    let mut qb = sqlx::QueryBuilder::new(HEAD);
                    push_audit_values(&mut qb, chunk);
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await
            }
        })?;
        Ok(())
    }

    /// Entries after `after` (by sequence number), optionally of one tenant.
    pub async fn audit_page(
        &self,
        tenant: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        const ALL: &str = "SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2";
        const OF_TENANT: &str =
            "SELECT * FROM audit_log WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3";
        Ok(match tenant {
            None => run!(self, |p| sqlx::query_as(ALL)
                .bind(after)
                .bind(limit)
                .fetch_all(p)
                .await)?,
            Some(t) => run!(self, |p| sqlx::query_as(OF_TENANT)
                .bind(t)
                .bind(after)
                .bind(limit)
                .fetch_all(p)
                .await)?,
        })
    }
}

fn push_audit_values<'a, DB>(qb: &mut sqlx::QueryBuilder<'a, DB>, entries: &'a [AuditRow])
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push_values(entries, |mut b, e| {
        b.push_bind(e.seq)
            .push_bind(&e.time)
            .push_bind(&e.principal)
            .push_bind(&e.tenant)
            .push_bind(&e.action)
            .push_bind(&e.resource)
            .push_bind(&e.decision)
            .push_bind(&e.policies)
            .push_bind(&e.request_id)
            .push_bind(&e.details)
            .push_bind(&e.prev_hash)
            .push_bind(&e.hash);
    });
}
