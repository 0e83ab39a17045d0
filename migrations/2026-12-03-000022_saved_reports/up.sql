-- Saved reports: a fixed report (with its query parameters) or an ad-hoc query (its
-- body), owned by a user and shared with roles or teams. Whoever runs one sees their
-- own data scope.
CREATE TABLE saved_reports (
    id                 uuid PRIMARY KEY,
    owner_id           uuid NOT NULL REFERENCES users (id),
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
