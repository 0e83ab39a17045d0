-- A schedule occurrence runs a rule once per record: its runs carry neither an event
-- nor a timer of their own, only the occurrence.
CREATE UNIQUE INDEX rule_runs_schedule_key ON rule_runs (rule_id, occurrence, record_id)
    WHERE event_id IS NULL AND timer_id IS NULL AND occurrence IS NOT NULL;

-- Pausing a rule that fires far more than its backtest predicts: `pause_factor` times
-- the hourly rate a replay of the past week gives (the baseline, recomputed daily by
-- the engine when the rule is busy).
ALTER TABLE rules ADD COLUMN pause_factor integer CHECK (pause_factor BETWEEN 2 AND 1000);
ALTER TABLE rules ADD COLUMN baseline_per_hour double precision;
ALTER TABLE rules ADD COLUMN baseline_at timestamptz;
