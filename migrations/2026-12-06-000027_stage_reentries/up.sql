-- Each stage visit knows when the deal last entered the same stage before it, so the
-- funnel counts the deals that entered a stage in a period (a deal entering twice
-- counts once) as the visits without an earlier entry in that period: a plain count
-- instead of a count of distinct deals over every visit.
ALTER TABLE stage_history ADD COLUMN prev_entered_at timestamptz;
UPDATE stage_history h SET prev_entered_at = p.prev
FROM (SELECT id, lag(entered_at) OVER (PARTITION BY opportunity_id, to_stage_id ORDER BY entered_at, id) AS prev
      FROM stage_history) p
WHERE p.id = h.id AND p.prev IS NOT NULL;

-- Recomputes one deal's links (its visits are few); changes only rows that differ, and
-- only prev_entered_at, which the trigger below does not watch.
CREATE FUNCTION stage_history_relink(deal uuid) RETURNS void
LANGUAGE sql AS $$
    UPDATE stage_history h SET prev_entered_at = p.prev
    FROM (SELECT id, lag(entered_at) OVER (PARTITION BY to_stage_id ORDER BY entered_at, id) AS prev
          FROM stage_history WHERE opportunity_id = deal) p
    WHERE h.id = p.id AND h.prev_entered_at IS DISTINCT FROM p.prev
$$;

CREATE FUNCTION stage_history_relink_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM stage_history_relink(OLD.opportunity_id); END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT' OR NEW.opportunity_id <> OLD.opportunity_id) THEN
        PERFORM stage_history_relink(NEW.opportunity_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER stage_history_relink
    AFTER INSERT OR DELETE OR UPDATE OF opportunity_id, to_stage_id, entered_at
    ON stage_history FOR EACH ROW EXECUTE FUNCTION stage_history_relink_trigger();
