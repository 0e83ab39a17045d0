-- One write path, enforced by the database.
--
-- Every insert, update and delete of a business record is captured by a trigger into
-- `pending_changes` (the record's row before and after, in storage form). Recording the
-- write (`audit::record`) consumes those rows and writes the audit entry and the outbox
-- event from them. A captured change still pending at commit aborts the transaction:
-- a business record cannot be written without its audit entry and event.
--
-- Direct setup writes (demo data, test fixtures) opt out for their session or
-- transaction with `SET [LOCAL] crm.unaudited_writes = 'allowed'`.

CREATE UNLOGGED TABLE pending_changes (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    entity_type text NOT NULL,
    entity_id uuid NOT NULL,
    old_row jsonb,
    new_row jsonb
);
CREATE INDEX pending_changes_entity_idx ON pending_changes (tx_id, entity_type, entity_id);

-- Columns that change as bookkeeping and are not a business write on their own
-- (`last_activity_at` is derived from the activities, which are recorded themselves).
CREATE FUNCTION crm_bookkeeping_columns() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['updated_at', 'version', 'last_login_at', 'last_used_at', 'last_activity_at']
$$;

CREATE FUNCTION crm_capture_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    o jsonb;
    n jsonb;
BEGIN
    IF current_setting('crm.unaudited_writes', true) = 'allowed' THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN o := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN n := to_jsonb(NEW); END IF;
    IF TG_OP = 'UPDATE' AND (o - crm_bookkeeping_columns()) = (n - crm_bookkeeping_columns()) THEN
        RETURN NULL;
    END IF;
    INSERT INTO pending_changes (entity_type, entity_id, old_row, new_row)
    VALUES (TG_ARGV[0], (COALESCE(n, o)->>'id')::uuid, o, n);
    RETURN NULL;
END $$;

CREATE FUNCTION crm_require_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pending_changes WHERE seq = NEW.seq) THEN
        RAISE EXCEPTION 'unrecorded write: % % was changed without an audit entry and event',
            NEW.entity_type, NEW.entity_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER pending_changes_recorded AFTER INSERT ON pending_changes
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION crm_require_recorded();

DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('accounts', 'accounts'), ('contacts', 'contacts'), ('leads', 'leads'),
        ('opportunities', 'opportunities'), ('activities', 'activities'), ('tasks', 'tasks'),
        ('products', 'products'), ('price_books', 'price_books'), ('quotes', 'quotes'),
        ('contracts', 'contracts'), ('invoices', 'invoices'), ('payments', 'payments'),
        ('approval_instances', 'approvals'), ('approval_definitions', 'approval_definitions'),
        ('pipelines', 'pipelines'), ('users', 'users'), ('teams', 'teams'), ('roles', 'roles'),
        ('api_keys', 'api_keys'), ('field_definitions', 'fields'), ('layouts', 'layouts')
    ) AS m(table_name, entity_type) LOOP
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I '
            'FOR EACH ROW EXECUTE FUNCTION crm_capture_change(%L)',
            t.table_name || '_capture', t.table_name, t.entity_type);
    END LOOP;
END $$;

-- The actor of a rule is recorded as such; events get a stable id.
ALTER TABLE audit_log ADD COLUMN rule_id uuid;
ALTER TABLE outbox_events ADD COLUMN event_id uuid;
UPDATE outbox_events SET event_id = gen_random_uuid() WHERE event_id IS NULL;
ALTER TABLE outbox_events ALTER COLUMN event_id SET NOT NULL;
CREATE UNIQUE INDEX outbox_events_event_id_idx ON outbox_events (event_id);
