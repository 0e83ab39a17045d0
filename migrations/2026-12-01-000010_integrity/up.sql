-- Integrity holes found by the outside security test (issue 9).

-- Reopening a won or lost deal is its own permission: reps cannot, managers and up can.
ALTER TABLE role_permissions DROP CONSTRAINT role_permissions_action_check;
ALTER TABLE role_permissions ADD CONSTRAINT role_permissions_action_check
    CHECK (action IN ('read', 'create', 'update', 'delete', 'export', 'assign', 'reopen', 'admin'));
INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, 'opportunities', 'reopen', g.scope
FROM roles r
JOIN (VALUES ('admin', 'all'), ('sales_director', 'all'), ('sales_manager', 'team_and_below')) AS g (key, scope)
  ON g.key = r.key
ON CONFLICT DO NOTHING;

-- Field permissions reach products and quotes: standard cost, cost totals and margins
-- are hidden from reps, presales, legal and marketing.
ALTER TABLE field_permissions DROP CONSTRAINT field_permissions_object_check;
ALTER TABLE field_permissions ADD CONSTRAINT field_permissions_object_check
    CHECK (object IN ('accounts', 'contacts', 'leads', 'opportunities', 'products', 'quotes'));
INSERT INTO field_permissions (role_id, object, field, access)
SELECT r.id, g.object, g.field, 'hidden'
FROM roles r
CROSS JOIN (VALUES ('products', 'standard_cost'), ('quotes', 'cost_total'), ('quotes', 'gross_margin'),
                   ('quotes', 'gross_margin_pct')) AS g (object, field)
WHERE r.key IN ('sales_rep', 'presales', 'legal', 'marketing')
ON CONFLICT DO NOTHING;

-- Free-text quote lines carry no list price, so their discount cannot be measured: the
-- seeded discount rule sends any quote with such a line to the sales director too.
UPDATE approval_definitions
SET condition = '{"any": [{"field": "effective_discount_pct", "op": "gt", "value": "15"},
                          {"field": "free_text_lines", "op": "gt", "value": 0}]}'::jsonb,
    name = '大额折扣或非标价格审批 Discount above 15% or free-text prices',
    updated_at = now(), version = version + 1
WHERE object_type = 'quote'
  AND condition = '{"field": "effective_discount_pct", "op": "gt", "value": "15"}'::jsonb;

-- Payments: a prepayment is money received before the contract is signed; it is held
-- as unapplied credit. Rules (tolerance, prepayments) are a setting.
ALTER TABLE payments ADD COLUMN prepayment boolean NOT NULL DEFAULT false;
INSERT INTO settings (key, value) VALUES
    ('payments', '{"overpayment_tolerance": "0.00", "accept_prepayments": true, "prepayment_wins_pct": "10.00"}')
ON CONFLICT (key) DO NOTHING;

-- Records that left a data scope (reassigned to another owner or team), so delta sync
-- can tell a device to drop its copy. One row per change of owner or team.
CREATE TABLE scope_departures (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource    text NOT NULL,
    record_id   uuid NOT NULL,
    owner_id    uuid NOT NULL,
    team_id     uuid,
    left_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scope_departures_resource_idx ON scope_departures (resource, left_at);
CREATE INDEX scope_departures_owner_idx ON scope_departures (owner_id, left_at);

CREATE FUNCTION record_scope_departure() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO scope_departures (resource, record_id, owner_id, team_id)
    VALUES (TG_TABLE_NAME, OLD.id, OLD.owner_id, OLD.team_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_scope_departure AFTER UPDATE OF owner_id, team_id ON accounts
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.team_id IS DISTINCT FROM NEW.team_id)
    EXECUTE FUNCTION record_scope_departure();
CREATE TRIGGER contacts_scope_departure AFTER UPDATE OF owner_id, team_id ON contacts
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.team_id IS DISTINCT FROM NEW.team_id)
    EXECUTE FUNCTION record_scope_departure();
CREATE TRIGGER leads_scope_departure AFTER UPDATE OF owner_id, team_id ON leads
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.team_id IS DISTINCT FROM NEW.team_id)
    EXECUTE FUNCTION record_scope_departure();
CREATE TRIGGER opportunities_scope_departure AFTER UPDATE OF owner_id, team_id ON opportunities
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.team_id IS DISTINCT FROM NEW.team_id)
    EXECUTE FUNCTION record_scope_departure();

-- Login protection per account and address: addresses a user has logged in from, and
-- what failed since the last success (shown to the user, reported to admins).
CREATE TABLE login_known_addresses (
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address          text NOT NULL,
    last_success_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, address)
);
CREATE TABLE login_security (
    user_id            uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    failed_since_login integer NOT NULL DEFAULT 0,
    last_failed_at     timestamptz,
    last_failed_from   text,
    locked_notice_at   timestamptz
);
