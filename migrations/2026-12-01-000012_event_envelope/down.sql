DROP INDEX outbox_events_event_id_idx;
ALTER TABLE outbox_events DROP COLUMN event_id;
ALTER TABLE audit_log DROP COLUMN rule_id;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['accounts', 'contacts', 'leads', 'opportunities', 'activities', 'tasks',
        'products', 'price_books', 'quotes', 'contracts', 'invoices', 'payments',
        'approval_instances', 'approval_definitions', 'pipelines', 'users', 'teams', 'roles',
        'api_keys', 'field_definitions', 'layouts'] LOOP
        EXECUTE format('DROP TRIGGER %I ON %I', t || '_capture', t);
    END LOOP;
END $$;
DROP TABLE pending_changes;
DROP FUNCTION crm_require_recorded();
DROP FUNCTION crm_capture_change();
DROP FUNCTION crm_bookkeeping_columns();
