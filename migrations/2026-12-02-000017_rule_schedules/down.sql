ALTER TABLE rules DROP COLUMN IF EXISTS baseline_at;
ALTER TABLE rules DROP COLUMN IF EXISTS baseline_per_hour;
ALTER TABLE rules DROP COLUMN IF EXISTS pause_factor;
DROP INDEX IF EXISTS rule_runs_schedule_key;
