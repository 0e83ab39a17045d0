DROP TRIGGER stage_history_relink ON stage_history;
DROP FUNCTION stage_history_relink_trigger();
DROP FUNCTION stage_history_relink(uuid);
ALTER TABLE stage_history DROP COLUMN prev_entered_at;
