-- Trial results (issue 6): the vendor's reported quality metric of a run, and the
-- resources a measured result used (JSON: core-seconds, GB-seconds, GPU-seconds).
ALTER TABLE trial_runs ADD COLUMN quality_metric TEXT;
ALTER TABLE trial_runs ADD COLUMN quality_value REAL;
ALTER TABLE catalogue_trial_results ADD COLUMN resources_json TEXT;
