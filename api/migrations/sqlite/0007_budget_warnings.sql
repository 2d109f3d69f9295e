-- Energy budget warnings already given (issue 6): one row per tenant, month and level.
-- The gateway that inserts the row gives the warning (audit entry, Kubernetes Event);
-- a restarted gateway or a second replica finds it and stays silent.
CREATE TABLE budget_warnings (
    tenant TEXT NOT NULL,
    month TEXT NOT NULL,
    level TEXT NOT NULL,
    warned_at TEXT NOT NULL,
    PRIMARY KEY (tenant, month, level)
);
