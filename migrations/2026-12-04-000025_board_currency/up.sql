-- The board's rollups per currency (a column never adds CNY to USD), and a third
-- rollup per expected close day that answers the partial months at the edges of a
-- close-date range. The live edge aggregate it replaces read up to a month of deals and
-- was fast only while the visibility map let Postgres skip the heap (after VACUUM);
-- the day rollup holds at most one row per (day, stage, owner, team, currency), so an
-- edge month costs the same whatever the vacuum state.
--
-- One trigger now maintains all three rollups, always in the same order (stage, month,
-- day; within a table the lower key first) so that concurrent changes cannot deadlock,
-- and skips updates that change none of the rolled-up columns.

DROP TRIGGER opportunity_totals ON opportunities;
DROP TRIGGER opportunity_totals_months ON opportunities;
DROP FUNCTION opportunity_totals_trigger();
DROP FUNCTION opportunity_month_totals_trigger();
DROP FUNCTION opportunity_totals_add(uuid, uuid, uuid, bigint, numeric, numeric);
DROP FUNCTION opportunity_month_totals_add(uuid, date, uuid, uuid, bigint, numeric, numeric);

ALTER TABLE opportunity_stage_totals ADD COLUMN currency text NOT NULL DEFAULT 'CNY';
ALTER TABLE opportunity_stage_totals ALTER COLUMN currency DROP DEFAULT;
ALTER TABLE opportunity_stage_totals DROP CONSTRAINT opportunity_stage_totals_pkey;
ALTER TABLE opportunity_stage_totals ADD PRIMARY KEY (stage_id, owner_id, team_id, currency);

ALTER TABLE opportunity_month_totals ADD COLUMN currency text NOT NULL DEFAULT 'CNY';
ALTER TABLE opportunity_month_totals ALTER COLUMN currency DROP DEFAULT;
ALTER TABLE opportunity_month_totals DROP CONSTRAINT opportunity_month_totals_pkey;
ALTER TABLE opportunity_month_totals ADD PRIMARY KEY (stage_id, close_month, owner_id, team_id, currency);

CREATE TABLE opportunity_day_totals (
    -- the expected close date; deals without one are not in this rollup
    close_date     date NOT NULL,
    stage_id       uuid NOT NULL REFERENCES stages (id),
    owner_id       uuid NOT NULL REFERENCES users (id),
    -- the deal's team; the nil UUID stands for "no team"
    team_id        uuid NOT NULL,
    currency       text NOT NULL,
    deals          bigint NOT NULL,
    amount         numeric NOT NULL,
    amount_x_prob  numeric NOT NULL,
    PRIMARY KEY (close_date, stage_id, owner_id, team_id, currency)
);
CREATE INDEX opportunity_day_totals_owner_idx ON opportunity_day_totals (owner_id);
CREATE INDEX opportunity_day_totals_team_idx ON opportunity_day_totals (team_id);

CREATE FUNCTION opportunity_rollups_add(o opportunities, n bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO opportunity_stage_totals AS x (stage_id, owner_id, team_id, currency, deals, amount, amount_x_prob)
    VALUES (o.stage_id, o.owner_id, coalesce(o.team_id, '00000000-0000-0000-0000-000000000000'::uuid), o.currency,
            n, n * coalesce(o.amount, 0), n * coalesce(o.amount, 0) * o.probability)
    ON CONFLICT (stage_id, owner_id, team_id, currency) DO UPDATE
    SET deals = x.deals + EXCLUDED.deals,
        amount = x.amount + EXCLUDED.amount,
        amount_x_prob = x.amount_x_prob + EXCLUDED.amount_x_prob
$$;

CREATE FUNCTION opportunity_month_rollups_add(o opportunities, n bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO opportunity_month_totals AS x (stage_id, close_month, owner_id, team_id, currency, deals, amount, amount_x_prob)
    VALUES (o.stage_id, opportunity_close_month(o.expected_close_date), o.owner_id,
            coalesce(o.team_id, '00000000-0000-0000-0000-000000000000'::uuid), o.currency,
            n, n * coalesce(o.amount, 0), n * coalesce(o.amount, 0) * o.probability)
    ON CONFLICT (stage_id, close_month, owner_id, team_id, currency) DO UPDATE
    SET deals = x.deals + EXCLUDED.deals,
        amount = x.amount + EXCLUDED.amount,
        amount_x_prob = x.amount_x_prob + EXCLUDED.amount_x_prob
$$;

CREATE FUNCTION opportunity_day_rollups_add(o opportunities, n bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO opportunity_day_totals AS x (close_date, stage_id, owner_id, team_id, currency, deals, amount, amount_x_prob)
    SELECT o.expected_close_date, o.stage_id, o.owner_id,
           coalesce(o.team_id, '00000000-0000-0000-0000-000000000000'::uuid), o.currency,
           n, n * coalesce(o.amount, 0), n * coalesce(o.amount, 0) * o.probability
    WHERE o.expected_close_date IS NOT NULL
    ON CONFLICT (close_date, stage_id, owner_id, team_id, currency) DO UPDATE
    SET deals = x.deals + EXCLUDED.deals,
        amount = x.amount + EXCLUDED.amount,
        amount_x_prob = x.amount_x_prob + EXCLUDED.amount_x_prob
$$;

CREATE FUNCTION opportunity_rollups_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    take_old boolean := TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL;
    put_new  boolean := TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL;
    nil      uuid := '00000000-0000-0000-0000-000000000000';
    first_new boolean;
BEGIN
    IF take_old AND put_new
       AND (OLD.stage_id, OLD.owner_id, OLD.team_id, OLD.currency, OLD.amount, OLD.probability, OLD.expected_close_date)
           IS NOT DISTINCT FROM
           (NEW.stage_id, NEW.owner_id, NEW.team_id, NEW.currency, NEW.amount, NEW.probability, NEW.expected_close_date) THEN
        RETURN NULL;
    END IF;
    -- Stage rollup.
    first_new := take_old AND put_new
        AND (NEW.stage_id, NEW.owner_id, coalesce(NEW.team_id, nil), NEW.currency)
          < (OLD.stage_id, OLD.owner_id, coalesce(OLD.team_id, nil), OLD.currency);
    IF first_new THEN PERFORM opportunity_rollups_add(NEW, 1); END IF;
    IF take_old THEN PERFORM opportunity_rollups_add(OLD, -1); END IF;
    IF put_new AND NOT first_new THEN PERFORM opportunity_rollups_add(NEW, 1); END IF;
    -- Month rollup.
    first_new := take_old AND put_new
        AND (NEW.stage_id, opportunity_close_month(NEW.expected_close_date), NEW.owner_id, coalesce(NEW.team_id, nil), NEW.currency)
          < (OLD.stage_id, opportunity_close_month(OLD.expected_close_date), OLD.owner_id, coalesce(OLD.team_id, nil), OLD.currency);
    IF first_new THEN PERFORM opportunity_month_rollups_add(NEW, 1); END IF;
    IF take_old THEN PERFORM opportunity_month_rollups_add(OLD, -1); END IF;
    IF put_new AND NOT first_new THEN PERFORM opportunity_month_rollups_add(NEW, 1); END IF;
    -- Day rollup (deals with a close date).
    first_new := take_old AND put_new
        AND (coalesce(NEW.expected_close_date, '0001-01-01'), NEW.stage_id, NEW.owner_id, coalesce(NEW.team_id, nil), NEW.currency)
          < (coalesce(OLD.expected_close_date, '0001-01-01'), OLD.stage_id, OLD.owner_id, coalesce(OLD.team_id, nil), OLD.currency);
    IF first_new THEN PERFORM opportunity_day_rollups_add(NEW, 1); END IF;
    IF take_old THEN PERFORM opportunity_day_rollups_add(OLD, -1); END IF;
    IF put_new AND NOT first_new THEN PERFORM opportunity_day_rollups_add(NEW, 1); END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER opportunity_totals
    AFTER INSERT OR DELETE OR UPDATE OF stage_id, owner_id, team_id, currency, amount, probability, deleted_at,
                                        expected_close_date
    ON opportunities FOR EACH ROW EXECUTE FUNCTION opportunity_rollups_trigger();

-- Rebuilds the three rollups from scratch (after bulk loads with the trigger disabled).
CREATE OR REPLACE FUNCTION rebuild_opportunity_stage_totals() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM opportunity_stage_totals;
    INSERT INTO opportunity_stage_totals (stage_id, owner_id, team_id, currency, deals, amount, amount_x_prob)
    SELECT stage_id, owner_id, coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid), currency,
           count(*), coalesce(sum(amount), 0), coalesce(sum(amount * probability), 0)
    FROM opportunities WHERE deleted_at IS NULL
    GROUP BY 1, 2, 3, 4;
    DELETE FROM opportunity_month_totals;
    INSERT INTO opportunity_month_totals (stage_id, close_month, owner_id, team_id, currency, deals, amount, amount_x_prob)
    SELECT stage_id, opportunity_close_month(expected_close_date), owner_id,
           coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid), currency,
           count(*), coalesce(sum(amount), 0), coalesce(sum(amount * probability), 0)
    FROM opportunities WHERE deleted_at IS NULL
    GROUP BY 1, 2, 3, 4, 5;
    DELETE FROM opportunity_day_totals;
    INSERT INTO opportunity_day_totals (close_date, stage_id, owner_id, team_id, currency, deals, amount, amount_x_prob)
    SELECT expected_close_date, stage_id, owner_id,
           coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid), currency,
           count(*), coalesce(sum(amount), 0), coalesce(sum(amount * probability), 0)
    FROM opportunities WHERE deleted_at IS NULL AND expected_close_date IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5;
$$;

SELECT rebuild_opportunity_stage_totals();
