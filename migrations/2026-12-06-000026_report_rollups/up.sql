-- Rollups the fixed reports read instead of scanning their records, kept in the same
-- transaction as the change by triggers (as the board's rollups are):
--
-- * activity_day_totals: activities per business day, type, owner and team (the
--   process report's activity volume). The business day depends on the calendar's
--   UTC offset; the offset the rollup was built with is kept in report_rollup_state,
--   and changing the calendar's offset rebuilds the rollup in the same transaction
--   (rebuild_activity_day_totals). A report uses the rollup only while both agree.
-- * opportunity_forecast_totals: open deals per expected close date, stage, forecast
--   category override, owner, team and currency (the pipeline report's cells).
--
-- Each trigger changes the old key before the new one in key order, as the board's
-- trigger does, so concurrent changes cannot deadlock on rollup rows.

CREATE TABLE report_rollup_state (
    id               boolean PRIMARY KEY DEFAULT TRUE CHECK (id),
    -- the business calendar's offset the day rollups are built with
    utc_offset_hours integer NOT NULL CHECK (utc_offset_hours BETWEEN -12 AND 14)
);
INSERT INTO report_rollup_state (utc_offset_hours)
SELECT coalesce((SELECT (value ->> 'utc_offset_hours')::integer FROM settings
                 WHERE key = 'business_calendar' AND jsonb_typeof(value -> 'utc_offset_hours') = 'number'
                   AND (value ->> 'utc_offset_hours') ~ '^-?[0-9]+$'
                   AND (value ->> 'utc_offset_hours')::integer BETWEEN -12 AND 14), 8);

CREATE TABLE activity_day_totals (
    -- the business day of occurred_at (report_rollup_state's offset)
    day            date NOT NULL,
    activity_type  text NOT NULL,
    owner_id       uuid NOT NULL,
    -- the nil UUID stands for "no team"
    team_id        uuid NOT NULL,
    activities     bigint NOT NULL,
    PRIMARY KEY (day, activity_type, owner_id, team_id)
);
CREATE INDEX activity_day_totals_owner_idx ON activity_day_totals (owner_id);
CREATE INDEX activity_day_totals_team_idx ON activity_day_totals (team_id);

-- The business day of a moment at an offset.
CREATE FUNCTION report_business_day(at timestamptz, offset_hours integer) RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT ((at AT TIME ZONE 'UTC') + make_interval(hours => offset_hours))::date
$$;

CREATE FUNCTION activity_rollup_add(a activities, offset_hours integer, n bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO activity_day_totals AS x (day, activity_type, owner_id, team_id, activities)
    VALUES (report_business_day(a.occurred_at, offset_hours), a.activity_type, a.owner_id,
            coalesce(a.team_id, '00000000-0000-0000-0000-000000000000'::uuid), n)
    ON CONFLICT (day, activity_type, owner_id, team_id) DO UPDATE
    SET activities = x.activities + EXCLUDED.activities
$$;

CREATE FUNCTION activity_rollup_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    take_old boolean := TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL;
    put_new  boolean := TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL;
    nil      uuid := '00000000-0000-0000-0000-000000000000';
    off      integer;
    first_new boolean;
BEGIN
    IF take_old AND put_new
       AND (OLD.occurred_at, OLD.activity_type, OLD.owner_id, OLD.team_id)
           IS NOT DISTINCT FROM (NEW.occurred_at, NEW.activity_type, NEW.owner_id, NEW.team_id) THEN
        RETURN NULL;
    END IF;
    -- Shared: a calendar change rebuilding the rollup (it updates this row first)
    -- waits for this transaction, or this one waits and reads the new offset.
    SELECT utc_offset_hours INTO off FROM report_rollup_state FOR SHARE;
    first_new := take_old AND put_new
        AND (report_business_day(NEW.occurred_at, off), NEW.activity_type, NEW.owner_id, coalesce(NEW.team_id, nil))
          < (report_business_day(OLD.occurred_at, off), OLD.activity_type, OLD.owner_id, coalesce(OLD.team_id, nil));
    IF first_new THEN PERFORM activity_rollup_add(NEW, off, 1); END IF;
    IF take_old THEN PERFORM activity_rollup_add(OLD, off, -1); END IF;
    IF put_new AND NOT first_new THEN PERFORM activity_rollup_add(NEW, off, 1); END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER activity_totals
    AFTER INSERT OR DELETE OR UPDATE OF occurred_at, activity_type, owner_id, team_id, deleted_at
    ON activities FOR EACH ROW EXECUTE FUNCTION activity_rollup_trigger();

-- Rebuilds the activity rollup at an offset (a calendar change, or after a bulk load
-- with the trigger disabled; NULL keeps the current offset).
CREATE FUNCTION rebuild_activity_day_totals(offset_hours integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE report_rollup_state SET utc_offset_hours = coalesce(offset_hours, utc_offset_hours);
    DELETE FROM activity_day_totals;
    INSERT INTO activity_day_totals (day, activity_type, owner_id, team_id, activities)
    SELECT report_business_day(a.occurred_at, s.utc_offset_hours), a.activity_type, a.owner_id,
           coalesce(a.team_id, '00000000-0000-0000-0000-000000000000'::uuid), count(*)
    FROM activities a CROSS JOIN report_rollup_state s
    WHERE a.deleted_at IS NULL
    GROUP BY 1, 2, 3, 4;
END $$;

CREATE TABLE opportunity_forecast_totals (
    -- the expected close date; '-infinity' stands for "none"
    close_date         date NOT NULL,
    stage_id           uuid NOT NULL REFERENCES stages (id),
    -- the deal's own forecast category; '' stands for "the stage's"
    forecast_category  text NOT NULL,
    owner_id           uuid NOT NULL REFERENCES users (id),
    -- the nil UUID stands for "no team"
    team_id            uuid NOT NULL,
    currency           text NOT NULL,
    deals              bigint NOT NULL,
    amount             numeric NOT NULL,
    amount_x_prob      numeric NOT NULL,
    PRIMARY KEY (close_date, stage_id, forecast_category, owner_id, team_id, currency)
);
CREATE INDEX opportunity_forecast_totals_owner_idx ON opportunity_forecast_totals (owner_id);
CREATE INDEX opportunity_forecast_totals_team_idx ON opportunity_forecast_totals (team_id);

CREATE FUNCTION opportunity_forecast_add(o opportunities, n bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO opportunity_forecast_totals AS x
        (close_date, stage_id, forecast_category, owner_id, team_id, currency, deals, amount, amount_x_prob)
    VALUES (coalesce(o.expected_close_date, '-infinity'::date), o.stage_id, coalesce(o.forecast_category, ''),
            o.owner_id, coalesce(o.team_id, '00000000-0000-0000-0000-000000000000'::uuid), o.currency,
            n, n * coalesce(o.amount, 0), n * coalesce(o.amount, 0) * o.probability)
    ON CONFLICT (close_date, stage_id, forecast_category, owner_id, team_id, currency) DO UPDATE
    SET deals = x.deals + EXCLUDED.deals,
        amount = x.amount + EXCLUDED.amount,
        amount_x_prob = x.amount_x_prob + EXCLUDED.amount_x_prob
$$;

CREATE FUNCTION opportunity_forecast_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    take_old boolean := TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL AND OLD.status = 'open';
    put_new  boolean := TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL AND NEW.status = 'open';
    nil      uuid := '00000000-0000-0000-0000-000000000000';
    first_new boolean;
BEGIN
    IF take_old AND put_new
       AND (OLD.expected_close_date, OLD.stage_id, OLD.forecast_category, OLD.owner_id, OLD.team_id, OLD.currency,
            OLD.amount, OLD.probability)
           IS NOT DISTINCT FROM
           (NEW.expected_close_date, NEW.stage_id, NEW.forecast_category, NEW.owner_id, NEW.team_id, NEW.currency,
            NEW.amount, NEW.probability) THEN
        RETURN NULL;
    END IF;
    first_new := take_old AND put_new
        AND (coalesce(NEW.expected_close_date, '-infinity'), NEW.stage_id, coalesce(NEW.forecast_category, ''),
             NEW.owner_id, coalesce(NEW.team_id, nil), NEW.currency)
          < (coalesce(OLD.expected_close_date, '-infinity'), OLD.stage_id, coalesce(OLD.forecast_category, ''),
             OLD.owner_id, coalesce(OLD.team_id, nil), OLD.currency);
    IF first_new THEN PERFORM opportunity_forecast_add(NEW, 1); END IF;
    IF take_old THEN PERFORM opportunity_forecast_add(OLD, -1); END IF;
    IF put_new AND NOT first_new THEN PERFORM opportunity_forecast_add(NEW, 1); END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER opportunity_totals_forecast
    AFTER INSERT OR DELETE OR UPDATE OF expected_close_date, stage_id, forecast_category, owner_id, team_id,
                                        currency, amount, probability, status, deleted_at
    ON opportunities FOR EACH ROW EXECUTE FUNCTION opportunity_forecast_trigger();

CREATE FUNCTION rebuild_opportunity_forecast_totals() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM opportunity_forecast_totals;
    INSERT INTO opportunity_forecast_totals
        (close_date, stage_id, forecast_category, owner_id, team_id, currency, deals, amount, amount_x_prob)
    SELECT coalesce(expected_close_date, '-infinity'::date), stage_id, coalesce(forecast_category, ''), owner_id,
           coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid), currency,
           count(*), coalesce(sum(amount), 0), coalesce(sum(amount * probability), 0)
    FROM opportunities WHERE deleted_at IS NULL AND status = 'open'
    GROUP BY 1, 2, 3, 4, 5, 6;
$$;

SELECT rebuild_activity_day_totals(NULL);
SELECT rebuild_opportunity_forecast_totals();
