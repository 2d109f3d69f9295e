//! Datasets, dataset versions and grants.

use super::rows::row;
use super::{Pool, Store, StoreError};

row! {
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct DatasetRow {
        pub id: String,
        pub tenant: String,
        pub name: String,
        pub description: String,
        pub classification: String,
        pub created_by: String,
        pub created_at: String,
    }
}

row! {
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct VersionRow {
        pub dataset_id: String,
        pub version: i64,
        pub source_format: String,
        pub source_sha256: String,
        pub object_key: String,
        pub wrapped_key: String,
        pub size: i64,
        pub sha256: String,
        pub rows: i64,
        pub schema_json: String,
        pub created_by: String,
        pub created_at: String,
        pub deleted_at: Option<String>,
        pub deleted_by: Option<String>,
    }
}

row! {
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct GrantRow {
        pub id: String,
        pub tenant: String,
        pub dataset_id: String,
        pub version: i64,
        pub grantee_kind: String,
        pub grantee: String,
        pub columns_json: String,
        pub recipe_json: String,
        pub row_filter: Option<String>,
        pub purpose: String,
        pub expires_at: String,
        pub created_by: String,
        pub created_at: String,
        pub revoked_at: Option<String>,
        pub revoked_by: Option<String>,
        pub pseudonym_key: String,
        pub view_key: String,
        pub view_wrapped_key: String,
        pub view_size: i64,
        pub view_sha256: String,
        pub view_rows: i64,
        pub view_schema_json: String,
        pub kanon_json: String,
    }
}

const INSERT_VERSION: &str = "INSERT INTO dataset_versions (dataset_id, version, \
    source_format, source_sha256, object_key, wrapped_key, size, sha256, rows, schema_json, \
    created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

macro_rules! bind_version {
    ($q:expr, $v:expr) => {
        $q.bind(&$v.dataset_id)
            .bind($v.version)
            .bind(&$v.source_format)
            .bind(&$v.source_sha256)
            .bind(&$v.object_key)
            .bind(&$v.wrapped_key)
            .bind($v.size)
            .bind(&$v.sha256)
            .bind($v.rows)
            .bind(&$v.schema_json)
            .bind(&$v.created_by)
            .bind(&$v.created_at)
    };
}

row! {
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct DataPolicyRow {
        pub tenant: String,
        pub min_k: i64,
        pub updated_by: String,
        pub updated_at: String,
    }
}

impl Store {
    pub async fn data_policy(&self, tenant: &str) -> Result<Option<DataPolicyRow>, StoreError> {
        const SQL: &str = "SELECT * FROM tenant_data_policies WHERE tenant = $1";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(tenant)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn put_data_policy(&self, d: &DataPolicyRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO tenant_data_policies (tenant, min_k, updated_by, \
            updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant) DO UPDATE SET \
            min_k = excluded.min_k, updated_by = excluded.updated_by, \
            updated_at = excluded.updated_at";
        run!(self, |p| sqlx::query(SQL)
            .bind(&d.tenant)
            .bind(d.min_k)
            .bind(&d.updated_by)
            .bind(&d.updated_at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// A new dataset with its first version, in one transaction.
    pub async fn insert_dataset(&self, d: &DatasetRow, v: &VersionRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO datasets (id, tenant, name, description, \
            classification, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let result = run!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(SQL)
                .bind(&d.id)
                .bind(&d.tenant)
                .bind(&d.name)
                .bind(&d.description)
                .bind(&d.classification)
                .bind(&d.created_by)
                .bind(&d.created_at)
                .execute(&mut *tx)
                .await?;
            bind_version!(sqlx::query(INSERT_VERSION), v)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        });
        match result.map_err(StoreError::from) {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                "tenant {:?} already has a dataset named {:?}",
                d.tenant, d.name
            ))),
            other => other,
        }
    }

    /// A new version, numbered after the highest existing one; the number is returned.
    /// Two concurrent uploads get distinct numbers (the primary key decides; the loser
    /// retries with the next number).
    pub async fn insert_version(&self, v: &VersionRow) -> Result<i64, StoreError> {
        const NEXT: &str =
            "SELECT COALESCE(MAX(version), 0) + 1 FROM dataset_versions WHERE dataset_id = $1";
        for _ in 0..5 {
            let next: i64 = run!(self, |p| sqlx::query_scalar(NEXT)
                .bind(&v.dataset_id)
                .fetch_one(p)
                .await)?;
            let mut row = v.clone();
            row.version = next;
            let result = run!(self, |p| bind_version!(sqlx::query(INSERT_VERSION), row)
                .execute(p)
                .await
                .map(|_| ()));
            match result.map_err(StoreError::from) {
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
                Ok(()) => return Ok(next),
            }
        }
        Err(StoreError::Conflict(
            "too many concurrent uploads of this dataset; try again".into(),
        ))
    }

    pub async fn get_dataset(&self, id: &str) -> Result<Option<DatasetRow>, StoreError> {
        const SQL: &str = "SELECT * FROM datasets WHERE id = $1";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    /// Datasets of the given tenants (every tenant with `all`), by tenant and name.
    pub async fn list_datasets(
        &self,
        tenants: &[String],
        all: bool,
    ) -> Result<Vec<DatasetRow>, StoreError> {
        let rows: Vec<DatasetRow> = run!(self, |p| sqlx::query_as(
            "SELECT * FROM datasets ORDER BY tenant, name"
        )
        .fetch_all(p)
        .await)?;
        Ok(rows
            .into_iter()
            .filter(|d| all || tenants.contains(&d.tenant))
            .collect())
    }

    pub async fn list_versions(&self, dataset_id: &str) -> Result<Vec<VersionRow>, StoreError> {
        const SQL: &str = "SELECT * FROM dataset_versions WHERE dataset_id = $1 ORDER BY version";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(dataset_id)
            .fetch_all(p)
            .await)?)
    }

    pub async fn get_version(
        &self,
        dataset_id: &str,
        version: i64,
    ) -> Result<Option<VersionRow>, StoreError> {
        const SQL: &str = "SELECT * FROM dataset_versions WHERE dataset_id = $1 AND version = $2";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(dataset_id)
            .bind(version)
            .fetch_optional(p)
            .await)?)
    }

    /// Mark a version deleted unless a grant that is neither revoked nor expired uses it
    /// (checked in the same statement). Returns the ids of the blocking grants, or an
    /// empty list when the version was marked.
    pub async fn delete_version(
        &self,
        dataset_id: &str,
        version: i64,
        by: &str,
        now: &str,
    ) -> Result<Vec<String>, StoreError> {
        const BLOCKING: &str = "SELECT id FROM grants WHERE dataset_id = $1 AND version = $2 \
            AND revoked_at IS NULL AND expires_at > $3 ORDER BY id";
        const MARK: &str = "UPDATE dataset_versions SET deleted_at = $1, deleted_by = $2 \
            WHERE dataset_id = $3 AND version = $4 AND deleted_at IS NULL AND NOT EXISTS \
            (SELECT 1 FROM grants WHERE dataset_id = $3 AND version = $4 \
             AND revoked_at IS NULL AND expires_at > $1)";
        let marked = run!(self, |p| sqlx::query(MARK)
            .bind(now)
            .bind(by)
            .bind(dataset_id)
            .bind(version)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if marked == 1 {
            return Ok(Vec::new());
        }
        let blocking: Vec<String> = run!(self, |p| sqlx::query_scalar(BLOCKING)
            .bind(dataset_id)
            .bind(version)
            .bind(now)
            .fetch_all(p)
            .await)?;
        if blocking.is_empty() {
            return Err(StoreError::Conflict(format!(
                "version {version} is already deleted"
            )));
        }
        Ok(blocking)
    }

    pub async fn insert_grant(&self, g: &GrantRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO grants (id, tenant, dataset_id, version, grantee_kind, \
            grantee, columns_json, recipe_json, row_filter, purpose, expires_at, created_by, \
            created_at, pseudonym_key, view_key, view_wrapped_key, view_size, view_sha256, \
            view_rows, view_schema_json, kanon_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
            $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)";
        run!(self, |p| sqlx::query(SQL)
            .bind(&g.id)
            .bind(&g.tenant)
            .bind(&g.dataset_id)
            .bind(g.version)
            .bind(&g.grantee_kind)
            .bind(&g.grantee)
            .bind(&g.columns_json)
            .bind(&g.recipe_json)
            .bind(&g.row_filter)
            .bind(&g.purpose)
            .bind(&g.expires_at)
            .bind(&g.created_by)
            .bind(&g.created_at)
            .bind(&g.pseudonym_key)
            .bind(&g.view_key)
            .bind(&g.view_wrapped_key)
            .bind(g.view_size)
            .bind(&g.view_sha256)
            .bind(g.view_rows)
            .bind(&g.view_schema_json)
            .bind(&g.kanon_json)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn get_grant(&self, id: &str) -> Result<Option<GrantRow>, StoreError> {
        const SQL: &str = "SELECT * FROM grants WHERE id = $1";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    /// Every grant, newest first (callers filter by what the principal may see).
    pub async fn list_grants(&self) -> Result<Vec<GrantRow>, StoreError> {
        const SQL: &str = "SELECT * FROM grants ORDER BY created_at DESC, id";
        Ok(run!(self, |p| sqlx::query_as(SQL).fetch_all(p).await)?)
    }

    /// Grants to a sandbox that are not revoked and have not expired at `now`.
    pub async fn live_sandbox_grants(
        &self,
        sandbox: &str,
        now: &str,
    ) -> Result<Vec<GrantRow>, StoreError> {
        const SQL: &str = "SELECT * FROM grants WHERE grantee_kind = 'sandbox' AND grantee = $1 \
            AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at, id";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(sandbox)
            .bind(now)
            .fetch_all(p)
            .await)?)
    }

    /// Grants to a sandbox that are not revoked (expired ones included).
    pub async fn unrevoked_sandbox_grants(
        &self,
        sandbox: &str,
    ) -> Result<Vec<GrantRow>, StoreError> {
        const SQL: &str = "SELECT * FROM grants WHERE grantee_kind = 'sandbox' AND grantee = $1 \
            AND revoked_at IS NULL ORDER BY created_at, id";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(sandbox)
            .fetch_all(p)
            .await)?)
    }

    /// Revoke every grant to a sandbox that is not revoked yet (expired ones included, so
    /// none outlives it); returns those this call revoked.
    pub async fn revoke_sandbox_grants(
        &self,
        sandbox: &str,
        by: &str,
        at: &str,
    ) -> Result<Vec<GrantRow>, StoreError> {
        let mut revoked = Vec::new();
        for g in self.unrevoked_sandbox_grants(sandbox).await? {
            if self.revoke_grant(&g.id, by, at).await? {
                revoked.push(g);
            }
        }
        Ok(revoked)
    }

    /// Revoke a grant; false when it was already revoked (or does not exist).
    pub async fn revoke_grant(&self, id: &str, by: &str, at: &str) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE grants SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(at)
            .bind(by)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
