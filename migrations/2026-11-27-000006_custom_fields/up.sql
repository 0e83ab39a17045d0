-- Form engine: custom field definitions, field-level permissions, layouts.

CREATE TABLE field_definitions (
    id                      uuid PRIMARY KEY,
    object                  text NOT NULL CHECK (object IN ('accounts', 'contacts', 'leads', 'opportunities')),
    key                     text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{0,39}$'),
    label_zh                text NOT NULL CHECK (length(btrim(label_zh)) BETWEEN 1 AND 200),
    label_en                text NOT NULL CHECK (length(btrim(label_en)) BETWEEN 1 AND 200),
    help_text               text,
    field_type              text NOT NULL CHECK (field_type IN (
                                'text', 'long_text', 'integer', 'decimal', 'money', 'percent', 'date', 'datetime',
                                'boolean', 'single_select', 'multi_select', 'email', 'phone', 'url', 'user_ref',
                                'record_ref', 'formula')),
    required                boolean NOT NULL DEFAULT false,
    required_from_stage_id  uuid REFERENCES stages (id),
    default_value           jsonb,
    position                integer NOT NULL DEFAULT 0,
    group_name              text,
    settings                jsonb NOT NULL DEFAULT '{}'::jsonb,
    filterable              boolean NOT NULL DEFAULT false,
    archived_at             timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    version                 integer NOT NULL DEFAULT 1,
    CHECK (required_from_stage_id IS NULL OR object = 'opportunities')
);
CREATE UNIQUE INDEX field_definitions_key ON field_definitions (object, key);
CREATE INDEX field_definitions_stage_idx ON field_definitions (required_from_stage_id);

-- Per role, a field (built-in name or custom.<key>) can be hidden, masked or read-only.
-- A user sees the most permissive access among their roles; no row means full access.
CREATE TABLE field_permissions (
    role_id  uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    object   text NOT NULL CHECK (object IN ('accounts', 'contacts', 'leads', 'opportunities')),
    field    text NOT NULL,
    access   text NOT NULL CHECK (access IN ('hidden', 'masked', 'read_only')),
    PRIMARY KEY (role_id, object, field)
);

-- Values left in place (and flagged) when a field definition was narrowed.
CREATE TABLE flagged_values (
    object      text NOT NULL,
    record_id   uuid NOT NULL,
    field_key   text NOT NULL,
    value       jsonb,
    reason      text NOT NULL,
    flagged_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (object, field_key, record_id)
);

-- Form layouts: ordered sections of fields, per object and optionally per pipeline.
CREATE TABLE layouts (
    id           uuid PRIMARY KEY,
    object       text NOT NULL CHECK (object IN ('accounts', 'contacts', 'leads', 'opportunities')),
    pipeline_id  uuid REFERENCES pipelines (id),
    name         text NOT NULL,
    sections     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer NOT NULL DEFAULT 1,
    CHECK (pipeline_id IS NULL OR object = 'opportunities')
);
CREATE UNIQUE INDEX layouts_scope_key ON layouts (object, coalesce(pipeline_id, '00000000-0000-0000-0000-000000000000'::uuid));
CREATE INDEX layouts_pipeline_idx ON layouts (pipeline_id);

-- Containment filters on any custom value (custom @> {"key": value}) use these.
CREATE INDEX accounts_custom_idx ON accounts USING gin (custom jsonb_path_ops);
CREATE INDEX contacts_custom_idx ON contacts USING gin (custom jsonb_path_ops);
CREATE INDEX leads_custom_idx ON leads USING gin (custom jsonb_path_ops);
CREATE INDEX opportunities_custom_idx ON opportunities USING gin (custom jsonb_path_ops);

-- Numeric view of a stored custom value (numbers are kept as exact decimal strings);
-- NULL for anything that is not a number. Used by range filters, sorts and their
-- per-field expression indexes.
CREATE FUNCTION crm_num(v text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v ~ '^-?[0-9]{1,30}(\.[0-9]{1,30})?$' THEN v::numeric END
$$;

INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, 'fields', a.action, 'all' FROM roles r CROSS JOIN (VALUES ('read'), ('admin')) AS a (action)
WHERE r.key = 'admin';
