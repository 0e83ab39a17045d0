-- Report subscriptions: a saved report or a dashboard delivered on a schedule (a cron
-- expression in the business time zone) to in-app notifications of its recipients
-- (each computed over the recipient's own scope) and to a DingTalk or WeCom channel
-- (computed over the owner's scope); with an alert, only when the alert's figure
-- crosses its threshold.
CREATE TABLE report_subscriptions (
    id               uuid PRIMARY KEY,
    owner_id         uuid NOT NULL REFERENCES users (id),
    team_id          uuid REFERENCES teams (id),
    name             text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    saved_report_id  uuid REFERENCES saved_reports (id) ON DELETE CASCADE,
    dashboard_id     uuid REFERENCES dashboards (id) ON DELETE CASCADE,
    schedule         text NOT NULL,
    period           text CHECK (period IN
                     ('this_week', 'last_week', 'this_month', 'last_month', 'this_quarter', 'last_quarter',
                      'this_year', 'last_year')),
    recipients       uuid[] NOT NULL DEFAULT '{}',
    channel_id       uuid,  -- a channel (not a foreign key: a deleted channel is reported by the next delivery)
    alert            jsonb CHECK (alert IS NULL OR jsonb_typeof(alert) = 'object'),
    enabled          boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer NOT NULL DEFAULT 1,
    CHECK ((saved_report_id IS NULL) <> (dashboard_id IS NULL)),
    CHECK (alert IS NULL OR saved_report_id IS NOT NULL)
);
CREATE INDEX report_subscriptions_owner_idx ON report_subscriptions (owner_id, created_at, id);

CREATE TRIGGER report_subscriptions_capture AFTER INSERT OR UPDATE OR DELETE ON report_subscriptions
    FOR EACH ROW EXECUTE FUNCTION crm_capture_change('report_subscriptions');

-- When each enabled subscription runs next (bookkeeping of the scheduler, apart from
-- the audited definition; no row: disabled).
CREATE TABLE report_schedules (
    subscription_id  uuid PRIMARY KEY REFERENCES report_subscriptions (id) ON DELETE CASCADE,
    next_run_at      timestamptz NOT NULL,
    last_run_at      timestamptz
);
CREATE INDEX report_schedules_due_idx ON report_schedules (next_run_at);

-- One row per occurrence a subscription ran for (the unique key makes a second run of
-- the same occurrence a no-op): what was computed, whether the alert fired, whom it
-- reached.
CREATE TABLE report_deliveries (
    id               uuid PRIMARY KEY,
    subscription_id  uuid NOT NULL REFERENCES report_subscriptions (id) ON DELETE CASCADE,
    occurrence       timestamptz NOT NULL,
    status           text NOT NULL CHECK (status IN ('sent', 'not_triggered', 'skipped', 'failed')),
    detail           jsonb NOT NULL DEFAULT '{}'::jsonb,
    notified         integer NOT NULL DEFAULT 0,
    channel_queued   boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subscription_id, occurrence)
);
CREATE INDEX report_deliveries_recent_idx ON report_deliveries (subscription_id, occurrence DESC);
