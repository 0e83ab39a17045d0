-- Organisation, roles, permissions and authentication.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE teams (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    kind        text NOT NULL CHECK (kind IN ('company', 'region', 'department', 'team')),
    parent_id   uuid REFERENCES teams (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer NOT NULL DEFAULT 1,
    CHECK (parent_id IS NULL OR parent_id <> id)
);
CREATE INDEX teams_parent_id_idx ON teams (parent_id);
-- Sibling teams have distinct names (case-insensitive).
CREATE UNIQUE INDEX teams_sibling_name_key
    ON teams (coalesce(parent_id, '00000000-0000-0000-0000-000000000000'::uuid), lower(name));

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL,
    name           text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    password_hash  text,
    phone          text,
    team_id        uuid REFERENCES teams (id),
    manager_id     uuid REFERENCES users (id),
    is_active      boolean NOT NULL DEFAULT true,
    is_service     boolean NOT NULL DEFAULT false,
    last_login_at  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    version        integer NOT NULL DEFAULT 1,
    CHECK (manager_id IS NULL OR manager_id <> id),
    CHECK (email = lower(email))
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_team_id_idx ON users (team_id);
CREATE INDEX users_manager_id_idx ON users (manager_id);

CREATE TABLE roles (
    id           uuid PRIMARY KEY,
    key          text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{1,49}$'),
    name         text NOT NULL,
    description  text,
    builtin      boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX roles_key_key ON roles (key);

CREATE TABLE role_permissions (
    role_id   uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    resource  text NOT NULL,
    action    text NOT NULL CHECK (action IN ('read', 'create', 'update', 'delete', 'export', 'assign', 'admin')),
    scope     text NOT NULL CHECK (scope IN ('own', 'team', 'team_and_below', 'all')),
    PRIMARY KEY (role_id, resource, action)
);

CREATE TABLE user_roles (
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id  uuid NOT NULL REFERENCES roles (id),
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role_id_idx ON user_roles (role_id);

-- Refresh tokens: random secrets stored as SHA-256; rotated on every use. A token that
-- is presented again after rotation revokes its whole family.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX refresh_tokens_token_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);

-- API keys for integrations: act as a service user with exactly one role.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    user_id       uuid NOT NULL REFERENCES users (id),
    role_id       uuid NOT NULL REFERENCES roles (id),
    prefix        text NOT NULL,
    key_hash      bytea NOT NULL,
    created_by    uuid NOT NULL REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE UNIQUE INDEX api_keys_prefix_key ON api_keys (prefix);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);
CREATE INDEX api_keys_role_id_idx ON api_keys (role_id);
CREATE INDEX api_keys_created_by_idx ON api_keys (created_by);

-- Failed-login throttling, keyed by 'email:<addr>' or 'ip:<addr>'. Kept in the database
-- so that every server instance sees the same counts.
CREATE TABLE login_throttle (
    key                text PRIMARY KEY,
    failures           integer NOT NULL,
    window_started_at  timestamptz NOT NULL,
    locked_until       timestamptz
);

-- Built-in roles and their grants. Resources are extended by later migrations.
INSERT INTO roles (id, key, name, description, builtin) VALUES
    (gen_random_uuid(), 'admin',          'Administrator',  'Users, teams, roles, configuration; sees everything', true),
    (gen_random_uuid(), 'sales_director', 'Sales director', 'Whole sales organisation; approves large discounts', true),
    (gen_random_uuid(), 'sales_manager',  'Sales manager',  'Own team and the teams below it', true),
    (gen_random_uuid(), 'sales_rep',      'Sales rep',      'Own customers and deals', true),
    (gen_random_uuid(), 'presales',       'Presales',       'Reads customers to prepare proposals', true),
    (gen_random_uuid(), 'legal',          'Legal',          'Reads customers to review contracts', true),
    (gen_random_uuid(), 'finance',        'Finance',        'Reads and exports customers for invoicing', true),
    (gen_random_uuid(), 'marketing',      'Marketing',      'Brings customers in from campaigns', true);

INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, g.resource, g.action, g.scope
FROM (VALUES
    -- admin: everything
    ('admin', 'accounts', 'read', 'all'), ('admin', 'accounts', 'create', 'all'),
    ('admin', 'accounts', 'update', 'all'), ('admin', 'accounts', 'delete', 'all'),
    ('admin', 'accounts', 'export', 'all'), ('admin', 'accounts', 'assign', 'all'),
    ('admin', 'contacts', 'read', 'all'), ('admin', 'contacts', 'create', 'all'),
    ('admin', 'contacts', 'update', 'all'), ('admin', 'contacts', 'delete', 'all'),
    ('admin', 'contacts', 'export', 'all'), ('admin', 'contacts', 'assign', 'all'),
    ('admin', 'users', 'read', 'all'), ('admin', 'users', 'admin', 'all'),
    ('admin', 'teams', 'read', 'all'), ('admin', 'teams', 'admin', 'all'),
    ('admin', 'roles', 'read', 'all'), ('admin', 'roles', 'admin', 'all'),
    ('admin', 'api_keys', 'admin', 'all'),
    ('admin', 'audit', 'read', 'all'),
    -- sales director: the whole sales organisation
    ('sales_director', 'accounts', 'read', 'all'), ('sales_director', 'accounts', 'create', 'all'),
    ('sales_director', 'accounts', 'update', 'all'), ('sales_director', 'accounts', 'delete', 'all'),
    ('sales_director', 'accounts', 'export', 'all'), ('sales_director', 'accounts', 'assign', 'all'),
    ('sales_director', 'contacts', 'read', 'all'), ('sales_director', 'contacts', 'create', 'all'),
    ('sales_director', 'contacts', 'update', 'all'), ('sales_director', 'contacts', 'delete', 'all'),
    ('sales_director', 'contacts', 'export', 'all'), ('sales_director', 'contacts', 'assign', 'all'),
    ('sales_director', 'users', 'read', 'all'), ('sales_director', 'teams', 'read', 'all'),
    ('sales_director', 'audit', 'read', 'all'),
    -- sales manager: own team and below
    ('sales_manager', 'accounts', 'read', 'team_and_below'), ('sales_manager', 'accounts', 'create', 'team_and_below'),
    ('sales_manager', 'accounts', 'update', 'team_and_below'), ('sales_manager', 'accounts', 'delete', 'team_and_below'),
    ('sales_manager', 'accounts', 'export', 'team_and_below'), ('sales_manager', 'accounts', 'assign', 'team_and_below'),
    ('sales_manager', 'contacts', 'read', 'team_and_below'), ('sales_manager', 'contacts', 'create', 'team_and_below'),
    ('sales_manager', 'contacts', 'update', 'team_and_below'), ('sales_manager', 'contacts', 'delete', 'team_and_below'),
    ('sales_manager', 'contacts', 'export', 'team_and_below'), ('sales_manager', 'contacts', 'assign', 'team_and_below'),
    ('sales_manager', 'users', 'read', 'team_and_below'), ('sales_manager', 'teams', 'read', 'all'),
    ('sales_manager', 'audit', 'read', 'team_and_below'),
    -- sales rep: own records
    ('sales_rep', 'accounts', 'read', 'own'), ('sales_rep', 'accounts', 'create', 'own'),
    ('sales_rep', 'accounts', 'update', 'own'), ('sales_rep', 'accounts', 'delete', 'own'),
    ('sales_rep', 'contacts', 'read', 'own'), ('sales_rep', 'contacts', 'create', 'own'),
    ('sales_rep', 'contacts', 'update', 'own'), ('sales_rep', 'contacts', 'delete', 'own'),
    ('sales_rep', 'users', 'read', 'team'), ('sales_rep', 'teams', 'read', 'all'),
    ('sales_rep', 'audit', 'read', 'own'),
    -- presales and legal: read customers across the company
    ('presales', 'accounts', 'read', 'all'), ('presales', 'contacts', 'read', 'all'),
    ('presales', 'users', 'read', 'all'), ('presales', 'teams', 'read', 'all'),
    ('legal', 'accounts', 'read', 'all'), ('legal', 'contacts', 'read', 'all'),
    ('legal', 'users', 'read', 'all'), ('legal', 'teams', 'read', 'all'),
    -- finance: read and export for invoicing and receivables
    ('finance', 'accounts', 'read', 'all'), ('finance', 'accounts', 'export', 'all'),
    ('finance', 'contacts', 'read', 'all'), ('finance', 'contacts', 'export', 'all'),
    ('finance', 'users', 'read', 'all'), ('finance', 'teams', 'read', 'all'),
    -- marketing: brings customers in, sees what it brought
    ('marketing', 'accounts', 'read', 'own'), ('marketing', 'accounts', 'create', 'own'),
    ('marketing', 'accounts', 'update', 'own'),
    ('marketing', 'contacts', 'read', 'own'), ('marketing', 'contacts', 'create', 'own'),
    ('marketing', 'contacts', 'update', 'own'),
    ('marketing', 'users', 'read', 'team'), ('marketing', 'teams', 'read', 'all')
) AS g (role_key, resource, action, scope)
JOIN roles r ON r.key = g.role_key;
