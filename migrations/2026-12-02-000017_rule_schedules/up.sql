-- A schedule occurrence runs a rule once per record: its runs carry neither an event
-- nor a timer of their own, only the occurrence.
CREATE UNIQUE INDEX rule_runs_schedule_key ON rule_runs (rule_id, occurrence, record_id)
    WHERE event_id IS NULL AND timer_id IS NULL AND occurrence IS NOT NULL;
