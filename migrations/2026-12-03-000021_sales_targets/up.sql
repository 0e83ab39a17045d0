-- Sales targets per rep or team and period: an amount of sales won, new contract
-- amount or payments collected (in one currency), or a count of deals won or new
-- contracts. A rep's target keeps the rep's team so managers see their reps' targets.
CREATE TABLE sales_targets (
    id           uuid PRIMARY KEY,
    owner_id     uuid REFERENCES users (id),
    team_id      uuid REFERENCES teams (id),
    metric       text NOT NULL CHECK (metric IN
                 ('sales_won_amount', 'new_contract_amount', 'payments_collected', 'deals_won', 'new_contracts')),
    period_from  date NOT NULL,
    period_to    date NOT NULL,
    currency     text CHECK (currency ~ '^[A-Z]{3}$'),
    target       numeric(18, 2) NOT NULL CHECK (target > 0),
    note         text CHECK (length(note) <= 2000),
    created_by   uuid REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer NOT NULL DEFAULT 1,
    CHECK (owner_id IS NOT NULL OR team_id IS NOT NULL),
    CHECK (period_to >= period_from AND period_to - period_from <= 1097),
    CHECK ((currency IS NULL) = (metric IN ('deals_won', 'new_contracts')))
);
-- One target per rep (or team), figure, period and currency.
CREATE UNIQUE INDEX sales_targets_key ON sales_targets
    (metric, (coalesce(owner_id, team_id)), (owner_id IS NULL), period_from, period_to, (coalesce(currency, '')));
CREATE INDEX sales_targets_owner_idx ON sales_targets (owner_id, period_from);
CREATE INDEX sales_targets_team_idx ON sales_targets (team_id, period_from);
CREATE INDEX sales_targets_created_by_idx ON sales_targets (created_by);
CREATE INDEX sales_targets_period_idx ON sales_targets (period_from, period_to);

CREATE TRIGGER sales_targets_capture AFTER INSERT OR UPDATE OR DELETE ON sales_targets
    FOR EACH ROW EXECUTE FUNCTION crm_capture_change('sales_targets');

INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, 'sales_targets', a.action, w.scope
FROM (VALUES ('admin', 'all'), ('sales_director', 'all'), ('sales_manager', 'team_and_below')) AS w (role_key, scope)
CROSS JOIN (VALUES ('read'), ('create'), ('update'), ('delete')) AS a (action)
JOIN roles r ON r.key = w.role_key;

INSERT INTO role_permissions (role_id, resource, action, scope)
SELECT r.id, 'sales_targets', 'read', g.scope
FROM (VALUES ('sales_rep', 'own'), ('finance', 'all')) AS g (role_key, scope)
JOIN roles r ON r.key = g.role_key;
