DROP INDEX IF EXISTS rule_runs_schedule_key;
