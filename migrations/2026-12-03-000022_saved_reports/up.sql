-- Saved reports: a fixed report (with its query parameters) or an ad-hoc query (its
-- body), owned by a user and shared with roles or teams. Whoever runs one sees their
-- own data scope.
CREATE TABLE saved_reports (
    id                 uuid PRIMARY KEY,
    owner_id           uuid REFERENCES users (id),  -- none: built in (seeded), changed by admins
    team_id            uuid REFERENCES teams (id),
    name               text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    report             text NOT NULL CHECK (report IN
                       ('results', 'process', 'funnel', 'pipeline', 'receivables', 'adoption', 'leaderboard',
                        'targets', 'query')),
    params             jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(params) = 'object'),
    shared_with_roles  text[] NOT NULL DEFAULT '{}',
    shared_with_teams  uuid[] NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    version            integer NOT NULL DEFAULT 1
);
CREATE INDEX saved_reports_owner_idx ON saved_reports (owner_id, created_at, id);
CREATE INDEX saved_reports_team_idx ON saved_reports (team_id);
CREATE INDEX saved_reports_roles_idx ON saved_reports USING gin (shared_with_roles);
CREATE INDEX saved_reports_teams_idx ON saved_reports USING gin (shared_with_teams);

CREATE TRIGGER saved_reports_capture AFTER INSERT OR UPDATE OR DELETE ON saved_reports
    FOR EACH ROW EXECUTE FUNCTION crm_capture_change('saved_reports');

-- Dashboards: ordered widgets (a saved report drawn as a chart of a size) under one
-- period and granularity that the whole dashboard switches at once.
CREATE TABLE dashboards (
    id                 uuid PRIMARY KEY,
    owner_id           uuid REFERENCES users (id),  -- none: built in (seeded), changed by admins
    team_id            uuid REFERENCES teams (id),
    name               text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    period             text NOT NULL DEFAULT 'this_month' CHECK (period IN
                       ('this_week', 'last_week', 'this_month', 'last_month', 'this_quarter', 'last_quarter',
                        'this_year', 'last_year')),
    granularity        text NOT NULL DEFAULT 'month' CHECK (granularity IN ('day', 'week', 'month', 'quarter', 'year')),
    widgets            jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(widgets) = 'array'),
    shared_with_roles  text[] NOT NULL DEFAULT '{}',
    shared_with_teams  uuid[] NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    version            integer NOT NULL DEFAULT 1
);
CREATE INDEX dashboards_owner_idx ON dashboards (owner_id, created_at, id);
CREATE INDEX dashboards_team_idx ON dashboards (team_id);
CREATE INDEX dashboards_roles_idx ON dashboards USING gin (shared_with_roles);
CREATE INDEX dashboards_teams_idx ON dashboards USING gin (shared_with_teams);

CREATE TRIGGER dashboards_capture AFTER INSERT OR UPDATE OR DELETE ON dashboards
    FOR EACH ROW EXECUTE FUNCTION crm_capture_change('dashboards');

-- The built-in reports and the two seeded dashboards: a sales dashboard for everyone
-- in sales and a manager cockpit. Each viewer sees their own scope.
SET LOCAL crm.unaudited_writes = 'allowed';
INSERT INTO saved_reports (id, owner_id, name, report, params, shared_with_roles) VALUES
    ('00000000-0000-7000-8000-000000000101', NULL, '本期业绩 Results', 'results', '{}',
     '{admin,sales_director,sales_manager,sales_rep}'),
    ('00000000-0000-7000-8000-000000000102', NULL, '销售漏斗 Funnel', 'funnel', '{}',
     '{admin,sales_director,sales_manager,sales_rep}'),
    ('00000000-0000-7000-8000-000000000103', NULL, '管道与预测 Pipeline', 'pipeline', '{}',
     '{admin,sales_director,sales_manager,sales_rep}'),
    ('00000000-0000-7000-8000-000000000104', NULL, '目标达成 Targets', 'targets', '{}',
     '{admin,sales_director,sales_manager,sales_rep}'),
    ('00000000-0000-7000-8000-000000000105', NULL, '赢单排行 Leaderboard', 'leaderboard', '{"kpi": "sales_won_amount"}',
     '{admin,sales_director,sales_manager}'),
    ('00000000-0000-7000-8000-000000000106', NULL, '过程指标 Process by rep', 'process', '{"group_by": "owner"}',
     '{admin,sales_director,sales_manager}'),
    ('00000000-0000-7000-8000-000000000107', NULL, '数据完整度 Adoption by rep', 'adoption', '{"group_by": "owner"}',
     '{admin,sales_director,sales_manager}'),
    ('00000000-0000-7000-8000-000000000108', NULL, '应收账款 Receivables by rep', 'receivables', '{"group_by": "owner"}',
     '{admin,sales_director,sales_manager}');
INSERT INTO dashboards (id, owner_id, name, period, granularity, widgets, shared_with_roles) VALUES
    ('00000000-0000-7000-8000-000000000201', NULL, '销售看板 Sales dashboard', 'this_month', 'month',
     '[{"saved_report_id": "00000000-0000-7000-8000-000000000101", "chart": "number", "size": "large"},
       {"saved_report_id": "00000000-0000-7000-8000-000000000104", "chart": "bar", "size": "medium"},
       {"saved_report_id": "00000000-0000-7000-8000-000000000103", "chart": "bar", "size": "medium"},
       {"saved_report_id": "00000000-0000-7000-8000-000000000102", "chart": "funnel", "size": "large"}]',
     '{admin,sales_director,sales_manager,sales_rep}'),
    ('00000000-0000-7000-8000-000000000202', NULL, '经理驾驶舱 Manager cockpit', 'this_month', 'week',
     '[{"saved_report_id": "00000000-0000-7000-8000-000000000101", "chart": "number", "size": "large"},
       {"saved_report_id": "00000000-0000-7000-8000-000000000105", "chart": "bar", "size": "medium"},
       {"saved_report_id": "00000000-0000-7000-8000-000000000106", "chart": "table", "size": "large"},
       {"saved_report_id": "00000000-0000-7000-8000-000000000102", "chart": "funnel", "size": "large"},
       {"saved_report_id": "00000000-0000-7000-8000-000000000103", "chart": "bar", "size": "medium"},
       {"saved_report_id": "00000000-0000-7000-8000-000000000104", "chart": "bar", "size": "medium"},
       {"saved_report_id": "00000000-0000-7000-8000-000000000107", "chart": "table", "size": "large"},
       {"saved_report_id": "00000000-0000-7000-8000-000000000108", "chart": "table", "size": "large"}]',
     '{admin,sales_director,sales_manager}');
