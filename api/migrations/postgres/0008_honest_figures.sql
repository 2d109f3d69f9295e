-- Honest figures (issue 15).
-- 1. A result attached from a trial run carries the gateway's Ed25519 signature over its
--    canonical form (catalogue::attestation), so an export can be checked, and no
--    attached result is ever changed: the environmental criterion counts only results
--    whose signature verifies.
ALTER TABLE catalogue_trial_results ADD COLUMN signature TEXT;
ALTER TABLE catalogue_trial_results ADD COLUMN key_id TEXT;
CREATE FUNCTION catalogue_trial_results_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'catalogue trial results are immutable once attached';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER catalogue_trial_results_immutable
BEFORE UPDATE ON catalogue_trial_results
FOR EACH ROW EXECUTE FUNCTION catalogue_trial_results_immutable();
-- 2. The frugal-AI good-practice checklist as a run's requester answered it (declared,
--    shown apart from the figures in the run's report).
CREATE TABLE run_practices (
    run TEXT PRIMARY KEY,
    answers_json TEXT NOT NULL,
    answered_by TEXT NOT NULL,
    answered_at TEXT NOT NULL
);
