-- Sandbox requests, their vendor members, per-tenant self-service policies and the
-- hash-chained audit log. Times are RFC 3339 UTC text with microseconds (they sort).
CREATE TABLE sandboxes (
    name TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    self_service BOOLEAN NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    decision_reason TEXT,
    -- JSON array: why the request needed approval (empty for self-service).
    approval_reasons TEXT NOT NULL,
    version BIGINT NOT NULL,
    applied_version BIGINT,
    applied_at TEXT,
    push_error TEXT,
    push_failed_version BIGINT
);
CREATE INDEX sandboxes_tenant ON sandboxes (tenant, name);
CREATE INDEX sandboxes_push ON sandboxes (state, version);

CREATE TABLE sandbox_members (
    sandbox TEXT NOT NULL REFERENCES sandboxes (name) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (sandbox, subject)
);
CREATE INDEX sandbox_members_subject ON sandbox_members (subject);

CREATE TABLE tenant_policies (
    tenant TEXT PRIMARY KEY,
    max_days BIGINT NOT NULL,
    allow_gpu BOOLEAN NOT NULL,
    max_cpu TEXT,
    max_memory TEXT,
    max_storage TEXT,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    time TEXT NOT NULL,
    principal TEXT NOT NULL,
    tenant TEXT,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    decision TEXT NOT NULL,
    policies TEXT NOT NULL,
    request_id TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant, seq);
