-- Usage ledger and trial runs (issue 6). The ledger is long: one row per window,
-- namespace, run ('' = the namespace's total) and quantity, each with its unit, method
-- flag and source, so a new quantity needs no migration. Times are RFC 3339 UTC with
-- microseconds (the store's one format), so text order is time order.
CREATE TABLE usage_ledger (
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    tenant TEXT NOT NULL,
    namespace TEXT NOT NULL,
    run TEXT NOT NULL,
    quantity TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    method TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (window_start, namespace, run, quantity)
);
CREATE INDEX usage_ledger_tenant ON usage_ledger (tenant, window_start);
CREATE INDEX usage_ledger_run ON usage_ledger (run, window_start);

-- End of the last window recorded whole (one row). Collection resumes from here.
CREATE TABLE usage_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_end TEXT NOT NULL
);

-- Trial runs as requested through the gateway (the cluster's TrialRun is the source of
-- truth while it runs); closed once its figures are final, which attaches them to the
-- catalogue solution. Kept after the TrialRun is deleted, for reports.
CREATE TABLE trial_runs (
    name TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    tenant TEXT NOT NULL,
    solution TEXT,
    kind TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    phase TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    exit_reason TEXT,
    summary_json TEXT,
    closed_at TEXT
);
CREATE INDEX trial_runs_sandbox ON trial_runs (sandbox, created_at);
CREATE INDEX trial_runs_solution ON trial_runs (solution, created_at);
