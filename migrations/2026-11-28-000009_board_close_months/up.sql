-- Board totals filtered by expected close date (the forecast view: "closing this
-- month / quarter") without aggregating every matching deal: counts and sums per
-- (stage, close month, owner, team), maintained by trigger like
-- opportunity_stage_totals. Whole months of a close-date range read these; only the
-- partial months at its edges are aggregated live, through the index below.

CREATE TABLE opportunity_month_totals (
    stage_id       uuid NOT NULL REFERENCES stages (id),
    -- first day of the expected close month; 0001-01-01 stands for "no close date"
    close_month    date NOT NULL,
    owner_id       uuid NOT NULL REFERENCES users (id),
    -- the deal's team; the nil UUID stands for "no team"
    team_id        uuid NOT NULL,
    deals          bigint NOT NULL,
    amount         numeric NOT NULL,
    amount_x_prob  numeric NOT NULL,
    PRIMARY KEY (stage_id, close_month, owner_id, team_id)
);
CREATE INDEX opportunity_month_totals_owner_idx ON opportunity_month_totals (owner_id);
CREATE INDEX opportunity_month_totals_team_idx ON opportunity_month_totals (team_id);

-- Live aggregation over the edge months, by index-only scan.
CREATE INDEX opportunities_close_totals_idx ON opportunities (stage_id, expected_close_date)
    INCLUDE (amount, probability, owner_id, team_id) WHERE deleted_at IS NULL;

CREATE FUNCTION opportunity_close_month(d date) RETURNS date
LANGUAGE sql IMMUTABLE AS $$ SELECT coalesce(date_trunc('month', d)::date, '0001-01-01'::date) $$;

CREATE FUNCTION opportunity_month_totals_add(s uuid, m date, o uuid, t uuid, n bigint, a numeric, ap numeric)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO opportunity_month_totals AS x (stage_id, close_month, owner_id, team_id, deals, amount, amount_x_prob)
    VALUES (s, m, o, coalesce(t, '00000000-0000-0000-0000-000000000000'::uuid), n, a, ap)
    ON CONFLICT (stage_id, close_month, owner_id, team_id) DO UPDATE
    SET deals = x.deals + EXCLUDED.deals,
        amount = x.amount + EXCLUDED.amount,
        amount_x_prob = x.amount_x_prob + EXCLUDED.amount_x_prob
$$;

CREATE FUNCTION opportunity_month_totals_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    take_old boolean := TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL;
    put_new  boolean := TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL;
    nil      uuid := '00000000-0000-0000-0000-000000000000';
BEGIN
    -- Touch the two rows in a fixed order so concurrent changes cannot deadlock.
    IF take_old AND put_new
       AND (NEW.stage_id, opportunity_close_month(NEW.expected_close_date), NEW.owner_id, coalesce(NEW.team_id, nil))
         < (OLD.stage_id, opportunity_close_month(OLD.expected_close_date), OLD.owner_id, coalesce(OLD.team_id, nil)) THEN
        PERFORM opportunity_month_totals_add(NEW.stage_id, opportunity_close_month(NEW.expected_close_date),
                NEW.owner_id, NEW.team_id, 1, coalesce(NEW.amount, 0), coalesce(NEW.amount, 0) * NEW.probability);
        PERFORM opportunity_month_totals_add(OLD.stage_id, opportunity_close_month(OLD.expected_close_date),
                OLD.owner_id, OLD.team_id, -1, -coalesce(OLD.amount, 0), -coalesce(OLD.amount, 0) * OLD.probability);
        RETURN NULL;
    END IF;
    IF take_old THEN
        PERFORM opportunity_month_totals_add(OLD.stage_id, opportunity_close_month(OLD.expected_close_date),
                OLD.owner_id, OLD.team_id, -1, -coalesce(OLD.amount, 0), -coalesce(OLD.amount, 0) * OLD.probability);
    END IF;
    IF put_new THEN
        PERFORM opportunity_month_totals_add(NEW.stage_id, opportunity_close_month(NEW.expected_close_date),
                NEW.owner_id, NEW.team_id, 1, coalesce(NEW.amount, 0), coalesce(NEW.amount, 0) * NEW.probability);
    END IF;
    RETURN NULL;
END $$;

-- Named after opportunity_totals... so that it fires after it: every transaction
-- touches the stage totals first, then the month totals.
CREATE TRIGGER opportunity_totals_months
    AFTER INSERT OR DELETE OR UPDATE OF stage_id, owner_id, team_id, amount, probability, deleted_at,
                                        expected_close_date
    ON opportunities FOR EACH ROW EXECUTE FUNCTION opportunity_month_totals_trigger();

-- Rebuilds both rollups from scratch (after bulk loads with the triggers disabled).
CREATE OR REPLACE FUNCTION rebuild_opportunity_stage_totals() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM opportunity_stage_totals;
    INSERT INTO opportunity_stage_totals (stage_id, owner_id, team_id, deals, amount, amount_x_prob)
    SELECT stage_id, owner_id, coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid),
           count(*), coalesce(sum(amount), 0), coalesce(sum(amount * probability), 0)
    FROM opportunities WHERE deleted_at IS NULL
    GROUP BY 1, 2, 3;
    DELETE FROM opportunity_month_totals;
    INSERT INTO opportunity_month_totals (stage_id, close_month, owner_id, team_id, deals, amount, amount_x_prob)
    SELECT stage_id, opportunity_close_month(expected_close_date), owner_id,
           coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid),
           count(*), coalesce(sum(amount), 0), coalesce(sum(amount * probability), 0)
    FROM opportunities WHERE deleted_at IS NULL
    GROUP BY 1, 2, 3, 4;
$$;

SELECT rebuild_opportunity_stage_totals();
