DROP INDEX webhook_deliveries_due_idx;
DELETE FROM outbox_subscribers WHERE name = 'rules';
DROP TABLE rule_cursors;
DROP TABLE rule_timers;
DROP TABLE rule_enrollments;
DROP TABLE rule_runs;
DROP TABLE rule_versions;
DROP TABLE rules;
