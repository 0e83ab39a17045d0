-- What the pipeline report's history forecast reads: per stage, how the closed deals
-- that entered it fared. One row per (day entered, day of the deal's previous entry
-- into the same stage, stage, owner, team) over the visits of closed (won or lost),
-- live deals, kept by triggers on the deals and on their visits. A window of entries
-- ("the last 365 days", from a UTC day) counts a deal once per stage by its visits
-- whose previous entry is before the window (prev_day, '-infinity' for none).
CREATE TABLE stage_win_totals (
    entered_on   date NOT NULL,
    prev_on      date NOT NULL,
    stage_id     uuid NOT NULL REFERENCES stages (id),
    owner_id     uuid NOT NULL,
    -- the nil UUID stands for "no team"
    team_id      uuid NOT NULL,
    visits       bigint NOT NULL,
    -- visits of deals won, and the seconds from each such entry to the win
    won_visits   bigint NOT NULL,
    won_secs     numeric NOT NULL,
    PRIMARY KEY (entered_on, prev_on, stage_id, owner_id, team_id)
);
CREATE INDEX stage_win_totals_owner_idx ON stage_win_totals (owner_id);
CREATE INDEX stage_win_totals_team_idx ON stage_win_totals (team_id);

-- Adds n times the contribution of the visits (of one deal, in the state o) given.
CREATE FUNCTION stage_win_add(o opportunities, v stage_history[], n bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO stage_win_totals AS x (entered_on, prev_on, stage_id, owner_id, team_id, visits, won_visits, won_secs)
    SELECT (h.entered_at AT TIME ZONE 'UTC')::date, coalesce((h.prev_entered_at AT TIME ZONE 'UTC')::date, '-infinity'),
           h.to_stage_id, o.owner_id, coalesce(o.team_id, '00000000-0000-0000-0000-000000000000'::uuid),
           n * count(*), n * count(*) FILTER (WHERE o.status = 'won'),
           n * coalesce(sum(extract(epoch FROM o.closed_at - h.entered_at)) FILTER (WHERE o.status = 'won'), 0)
    FROM unnest(v) h
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (entered_on, prev_on, stage_id, owner_id, team_id) DO UPDATE
    SET visits = x.visits + EXCLUDED.visits,
        won_visits = x.won_visits + EXCLUDED.won_visits,
        won_secs = x.won_secs + EXCLUDED.won_secs
$$;

CREATE FUNCTION stage_win_counts(o opportunities) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT o.deleted_at IS NULL AND o.status IN ('won', 'lost') $$;

-- A deal closed, reopened, reassigned, deleted or restored: its visits move.
CREATE FUNCTION stage_win_deal_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    visits stage_history[];
BEGIN
    IF TG_OP = 'UPDATE'
       AND (OLD.status, OLD.owner_id, OLD.team_id, OLD.deleted_at, OLD.closed_at)
           IS NOT DISTINCT FROM (NEW.status, NEW.owner_id, NEW.team_id, NEW.deleted_at, NEW.closed_at) THEN
        RETURN NULL;
    END IF;
    IF (TG_OP <> 'INSERT' AND stage_win_counts(OLD)) OR (TG_OP <> 'DELETE' AND stage_win_counts(NEW)) THEN
        SELECT array_agg(h) INTO visits FROM stage_history h
        WHERE h.opportunity_id = CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
        IF visits IS NULL THEN RETURN NULL; END IF;
        IF TG_OP <> 'INSERT' AND stage_win_counts(OLD) THEN PERFORM stage_win_add(OLD, visits, -1); END IF;
        IF TG_OP <> 'DELETE' AND stage_win_counts(NEW) THEN PERFORM stage_win_add(NEW, visits, 1); END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER stage_win_totals
    AFTER INSERT OR DELETE OR UPDATE OF status, owner_id, team_id, deleted_at, closed_at
    ON opportunities FOR EACH ROW EXECUTE FUNCTION stage_win_deal_trigger();

-- A visit of a closed deal added, changed or removed (closing adds the won or lost
-- stage's visit after the deal's status changed).
CREATE FUNCTION stage_win_visit_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    o opportunities;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT * INTO o FROM opportunities WHERE id = OLD.opportunity_id;
        IF FOUND AND stage_win_counts(o) THEN PERFORM stage_win_add(o, ARRAY[OLD], -1); END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT * INTO o FROM opportunities WHERE id = NEW.opportunity_id;
        IF FOUND AND stage_win_counts(o) THEN PERFORM stage_win_add(o, ARRAY[NEW], 1); END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER stage_win_totals
    AFTER INSERT OR DELETE OR UPDATE OF opportunity_id, to_stage_id, entered_at, prev_entered_at
    ON stage_history FOR EACH ROW EXECUTE FUNCTION stage_win_visit_trigger();

CREATE FUNCTION rebuild_stage_win_totals() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM stage_win_totals;
    INSERT INTO stage_win_totals (entered_on, prev_on, stage_id, owner_id, team_id, visits, won_visits, won_secs)
    SELECT (h.entered_at AT TIME ZONE 'UTC')::date, coalesce((h.prev_entered_at AT TIME ZONE 'UTC')::date, '-infinity'),
           h.to_stage_id, o.owner_id, coalesce(o.team_id, '00000000-0000-0000-0000-000000000000'::uuid),
           count(*), count(*) FILTER (WHERE o.status = 'won'),
           coalesce(sum(extract(epoch FROM o.closed_at - h.entered_at)) FILTER (WHERE o.status = 'won'), 0)
    FROM stage_history h JOIN opportunities o ON o.id = h.opportunity_id
    WHERE o.deleted_at IS NULL AND o.status IN ('won', 'lost')
    GROUP BY 1, 2, 3, 4, 5;
$$;

SELECT rebuild_stage_win_totals();
