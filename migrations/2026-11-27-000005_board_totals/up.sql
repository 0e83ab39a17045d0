-- Board totals without scanning every deal: counts and sums per (stage, owner, team),
-- maintained by trigger in the same transaction as the change. The board reads these
-- when it is filtered only by data scope, owner or team.

CREATE TABLE opportunity_stage_totals (
    stage_id       uuid NOT NULL REFERENCES stages (id),
    owner_id       uuid NOT NULL REFERENCES users (id),
    -- the deal's team; the nil UUID stands for "no team" (never a real team id)
    team_id        uuid NOT NULL,
    deals          bigint NOT NULL,
    amount         numeric NOT NULL,
    -- sum of amount x probability (percent); weighted amount = this / 100
    amount_x_prob  numeric NOT NULL,
    PRIMARY KEY (stage_id, owner_id, team_id)
);
CREATE INDEX opportunity_stage_totals_owner_idx ON opportunity_stage_totals (owner_id);
CREATE INDEX opportunity_stage_totals_team_idx ON opportunity_stage_totals (team_id);

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
    -- Touch the two rows in a fixed order so concurrent moves cannot deadlock.
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

CREATE TRIGGER opportunity_totals
    AFTER INSERT OR DELETE OR UPDATE OF stage_id, owner_id, team_id, amount, probability, deleted_at
    ON opportunities FOR EACH ROW EXECUTE FUNCTION opportunity_totals_trigger();

-- Rebuilds the totals from scratch (after bulk loads with the trigger disabled).
CREATE FUNCTION rebuild_opportunity_stage_totals() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM opportunity_stage_totals;
    INSERT INTO opportunity_stage_totals (stage_id, owner_id, team_id, deals, amount, amount_x_prob)
    SELECT stage_id, owner_id, coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid),
           count(*), coalesce(sum(amount), 0), coalesce(sum(amount * probability), 0)
    FROM opportunities WHERE deleted_at IS NULL
    GROUP BY 1, 2, 3;
$$;

SELECT rebuild_opportunity_stage_totals();
