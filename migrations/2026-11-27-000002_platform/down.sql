DROP TABLE idempotency_keys;
DROP TABLE outbox_events;
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
