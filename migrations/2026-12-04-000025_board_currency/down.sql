DROP TRIGGER opportunity_totals ON opportunities;
DROP FUNCTION opportunity_rollups_trigger();
DROP FUNCTION opportunity_rollups_add(opportunities, bigint);
DROP FUNCTION opportunity_month_rollups_add(opportunities, bigint);
DROP FUNCTION opportunity_day_rollups_add(opportunities, bigint);
DROP TABLE opportunity_day_totals;

-- Emptied here, rebuilt at the end.
DELETE FROM opportunity_stage_totals;
ALTER TABLE opportunity_stage_totals DROP CONSTRAINT opportunity_stage_totals_pkey;
ALTER TABLE opportunity_stage_totals DROP COLUMN currency;
ALTER TABLE opportunity_stage_totals ADD PRIMARY KEY (stage_id, owner_id, team_id);
DELETE FROM opportunity_month_totals;
ALTER TABLE opportunity_month_totals DROP CONSTRAINT opportunity_month_totals_pkey;
ALTER TABLE opportunity_month_totals DROP COLUMN currency;
ALTER TABLE opportunity_month_totals ADD PRIMARY KEY (stage_id, close_month, owner_id, team_id);

CREATE FUNCTION opportunity_totals_add(s uuid, o uuid, t uuid, n bigint, a numeric, ap numeric) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO opportunity_stage_totals AS x (stage_id, owner_id, team_id, deals, amount, amount_x_prob)
    VALUES (s, o, coalesce(t, '00000000-0000-0000-0000-000000000000'::uuid), n, a, ap)
    ON CONFLICT (stage_id, owner_id, team_id) DO UPDATE
    SET deals = x.deals + EXCLUDED.deals,
        amount = x.amount + EXCLUDED.amount,
        amount_x_prob = x.amount_x_prob + EXCLUDED.amount_x_prob
$$;

CREATE FUNCTION opportunity_totals_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    take_old boolean := TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL;
    put_new  boolean := TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL;
BEGIN
    IF take_old AND put_new AND (NEW.stage_id, NEW.owner_id, coalesce(NEW.team_id, '00000000-0000-0000-0000-000000000000'::uuid))
                              < (OLD.stage_id, OLD.owner_id, coalesce(OLD.team_id, '00000000-0000-0000-0000-000000000000'::uuid)) THEN
        PERFORM opportunity_totals_add(NEW.stage_id, NEW.owner_id, NEW.team_id, 1,
                                       coalesce(NEW.amount, 0), coalesce(NEW.amount, 0) * NEW.probability);
        PERFORM opportunity_totals_add(OLD.stage_id, OLD.owner_id, OLD.team_id, -1,
                                       -coalesce(OLD.amount, 0), -coalesce(OLD.amount, 0) * OLD.probability);
        RETURN NULL;
    END IF;
    IF take_old THEN
        PERFORM opportunity_totals_add(OLD.stage_id, OLD.owner_id, OLD.team_id, -1,
                                       -coalesce(OLD.amount, 0), -coalesce(OLD.amount, 0) * OLD.probability);
    END IF;
    IF put_new THEN
        PERFORM opportunity_totals_add(NEW.stage_id, NEW.owner_id, NEW.team_id, 1,
                                       coalesce(NEW.amount, 0), coalesce(NEW.amount, 0) * NEW.probability);
    END IF;
    RETURN NULL;
END $$;

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
BEGIN
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

CREATE TRIGGER opportunity_totals
    AFTER INSERT OR DELETE OR UPDATE OF stage_id, owner_id, team_id, amount, probability, deleted_at
    ON opportunities FOR EACH ROW EXECUTE FUNCTION opportunity_totals_trigger();
CREATE TRIGGER opportunity_totals_months
    AFTER INSERT OR DELETE OR UPDATE OF stage_id, owner_id, team_id, amount, probability, deleted_at,
                                        expected_close_date
    ON opportunities FOR EACH ROW EXECUTE FUNCTION opportunity_month_totals_trigger();

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
