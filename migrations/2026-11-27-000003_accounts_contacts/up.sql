-- Customers (accounts) and their contacts.

CREATE TABLE accounts (
    id            uuid PRIMARY KEY,
    name          text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    -- normalised name for duplicate detection (trimmed, lower case, full-width folded)
    name_norm     text NOT NULL,
    account_type  text NOT NULL CHECK (account_type IN ('customer', 'prospect', 'partner', 'competitor')),
    industry      text,
    region        text,
    address       text,
    phone         text,
    email         text,
    website       text,
    tier          text CHECK (tier IN ('A', 'B', 'C', 'D')),
    source        text CHECK (source IN ('website', 'campaign', 'event', 'referral', 'cold_call', 'partner', 'other')),
    parent_id     uuid REFERENCES accounts (id),
    owner_id      uuid NOT NULL REFERENCES users (id),
    team_id       uuid REFERENCES teams (id),
    notes         text,
    custom        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by    uuid REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    version       integer NOT NULL DEFAULT 1,
    CHECK (parent_id IS NULL OR parent_id <> id)
);
-- Foreign keys
CREATE INDEX accounts_parent_id_idx ON accounts (parent_id);
CREATE INDEX accounts_owner_id_idx ON accounts (owner_id, created_at, id);
CREATE INDEX accounts_team_id_idx ON accounts (team_id, created_at, id);
CREATE INDEX accounts_created_by_idx ON accounts (created_by);
-- Sorts and keyset pagination (live rows only)
CREATE INDEX accounts_created_at_idx ON accounts (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX accounts_updated_at_idx ON accounts (updated_at, id);
CREATE INDEX accounts_name_idx ON accounts (name, id) WHERE deleted_at IS NULL;
CREATE INDEX accounts_deleted_at_idx ON accounts (deleted_at) WHERE deleted_at IS NOT NULL;
-- Filters
CREATE INDEX accounts_type_idx ON accounts (account_type) WHERE deleted_at IS NULL;
CREATE INDEX accounts_industry_idx ON accounts (industry) WHERE deleted_at IS NULL;
CREATE INDEX accounts_region_idx ON accounts (region) WHERE deleted_at IS NULL;
CREATE INDEX accounts_tier_idx ON accounts (tier) WHERE deleted_at IS NULL;
-- Duplicate detection
CREATE INDEX accounts_name_norm_idx ON accounts (name_norm) WHERE deleted_at IS NULL;
CREATE INDEX accounts_phone_idx ON accounts (phone) WHERE deleted_at IS NULL;
CREATE INDEX accounts_email_idx ON accounts (email) WHERE deleted_at IS NULL;
-- `q` search: trigram index over name, phone and email (works for Chinese text).
CREATE INDEX accounts_search_idx ON accounts
    USING gin ((name || ' ' || coalesce(phone, '') || ' ' || coalesce(email, '')) gin_trgm_ops);

CREATE TABLE contacts (
    id              uuid PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts (id),
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    name_norm       text NOT NULL,
    title           text,
    department      text,
    mobile          text,
    phone           text,
    email           text,
    wechat          text,
    birthday        date,
    decision_role   text CHECK (decision_role IN ('decision_maker', 'influencer', 'user', 'gatekeeper')),
    preferences     text,
    pain_points     text,
    notes           text,
    owner_id        uuid NOT NULL REFERENCES users (id),
    team_id         uuid REFERENCES teams (id),
    custom          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    version         integer NOT NULL DEFAULT 1
);
CREATE INDEX contacts_account_id_idx ON contacts (account_id, created_at, id);
CREATE INDEX contacts_owner_id_idx ON contacts (owner_id, created_at, id);
CREATE INDEX contacts_team_id_idx ON contacts (team_id, created_at, id);
CREATE INDEX contacts_created_by_idx ON contacts (created_by);
CREATE INDEX contacts_created_at_idx ON contacts (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX contacts_updated_at_idx ON contacts (updated_at, id);
CREATE INDEX contacts_name_idx ON contacts (name, id) WHERE deleted_at IS NULL;
CREATE INDEX contacts_deleted_at_idx ON contacts (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX contacts_decision_role_idx ON contacts (decision_role) WHERE deleted_at IS NULL;
-- birthdays by month-day, for customer-care reminders
CREATE INDEX contacts_birthday_md_idx ON contacts (((extract(month FROM birthday) * 100 + extract(day FROM birthday))::int)) WHERE deleted_at IS NULL AND birthday IS NOT NULL;
CREATE INDEX contacts_mobile_idx ON contacts (mobile) WHERE deleted_at IS NULL;
CREATE INDEX contacts_phone_idx ON contacts (phone) WHERE deleted_at IS NULL;
CREATE INDEX contacts_email_idx ON contacts (email) WHERE deleted_at IS NULL;
CREATE INDEX contacts_search_idx ON contacts
    USING gin ((name || ' ' || coalesce(mobile, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(email, '')) gin_trgm_ops);
