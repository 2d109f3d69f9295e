-- Datasets, their immutable versions, and grants (issue 5). Dataset bytes live encrypted in
-- object storage; these rows hold what is needed to find and decrypt them.

CREATE TABLE datasets (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    classification TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (tenant, name)
);

CREATE TABLE dataset_versions (
    dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    -- The uploaded file's format (csv or parquet) and SHA-256.
    source_format TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    -- The stored, normalised Parquet: object key, wrapped data key, plaintext size and SHA-256.
    object_key TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    rows BIGINT NOT NULL,
    -- JSON array of {name, type, nullable}.
    schema_json TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- Set when the version is deleted: the object is gone, the row stays for the grants
    -- and the audit log that name it.
    deleted_at TEXT,
    deleted_by TEXT,
    PRIMARY KEY (dataset_id, version)
);

CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    -- 'sandbox' (members of that sandbox and its tenant) or 'vendor' (one principal).
    grantee_kind TEXT NOT NULL,
    grantee TEXT NOT NULL,
    -- JSON: the projection (array of column names) and the anonymisation recipe.
    columns_json TEXT NOT NULL,
    recipe_json TEXT NOT NULL,
    row_filter TEXT,
    purpose TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    revoked_by TEXT,
    -- The grant's pseudonym key, wrapped by the gateway's key-encryption key.
    pseudonym_key TEXT NOT NULL,
    -- The materialised view: object, wrapped data key, plaintext size, SHA-256, rows and
    -- schema, and the k-anonymity report (JSON).
    view_key TEXT NOT NULL,
    view_wrapped_key TEXT NOT NULL,
    view_size BIGINT NOT NULL,
    view_sha256 TEXT NOT NULL,
    view_rows BIGINT NOT NULL,
    view_schema_json TEXT NOT NULL,
    kanon_json TEXT NOT NULL,
    FOREIGN KEY (dataset_id, version) REFERENCES dataset_versions (dataset_id, version)
);
CREATE INDEX grants_tenant ON grants (tenant, created_at);
CREATE INDEX grants_version ON grants (dataset_id, version);
CREATE INDEX grants_grantee ON grants (grantee_kind, grantee);
