-- Per-tenant data policy (issue 5): the minimum k-anonymity a personal dataset's view must
-- reach before it is granted to a vendor. Tenants without a row use the gateway's --min-k.
CREATE TABLE tenant_data_policies (
    tenant TEXT PRIMARY KEY,
    min_k BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
