-- The catalogue of AI solutions (issue 6, Action 1 of the Métropole's strategy) and the
-- measured trial results its environmental criterion is derived from.

CREATE TABLE catalogue_solutions (
    id TEXT PRIMARY KEY,
    -- proposed, published or rejected.
    status TEXT NOT NULL,
    -- The vendor organisation's name.
    vendor TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    description TEXT NOT NULL,
    -- SPDX licence identifier (whether it is free software is derived when shown).
    licence_spdx TEXT NOT NULL,
    hosting_provider TEXT NOT NULL,
    -- ISO 3166-1 alpha-2 country code, or EU.
    hosting_location TEXT NOT NULL,
    extra_eu_transfer BOOLEAN NOT NULL,
    -- prohibited, high, limited or minimal (EU AI Act).
    ai_act_risk_class TEXT NOT NULL,
    gdpr_notes TEXT NOT NULL,
    -- JSON: the five assessed criteria, each {score, evidence}; the environmental one is
    -- never stored here (derived from catalogue_trial_results).
    criteria_json TEXT NOT NULL,
    -- The vendor principal who proposed the entry; NULL when a Métropole admin created it.
    proposed_by TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    published_at TEXT,
    UNIQUE (vendor, name, version)
);
CREATE INDEX catalogue_solutions_status ON catalogue_solutions (status, vendor, name);

CREATE TABLE catalogue_trial_results (
    id TEXT PRIMARY KEY,
    solution_id TEXT NOT NULL REFERENCES catalogue_solutions (id) ON DELETE CASCADE,
    run_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    -- training, fine-tuning, inference or evaluation.
    phase TEXT NOT NULL,
    kwh REAL NOT NULL,
    gco2e REAL NOT NULL,
    duration_s REAL NOT NULL,
    functional_units REAL,
    quality_metric TEXT,
    quality_value REAL,
    measured_at TEXT NOT NULL,
    -- JSON object of method flags (e.g. {"estimated": false, "meter": "rapl+nvml"}).
    method_json TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (solution_id, run_id, phase)
);
CREATE INDEX catalogue_trial_results_solution ON catalogue_trial_results (solution_id, measured_at);
