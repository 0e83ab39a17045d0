DROP INDEX lead_slas_assigned_at_idx;
DROP INDEX contracts_signed_at_idx;
DROP TRIGGER stage_history_link_previous ON stage_history;
DROP FUNCTION stage_history_link_previous();
ALTER TABLE stage_history DROP COLUMN next_stage_id;
DROP TABLE forecast_snapshots;
ALTER TABLE opportunities DROP COLUMN forecast_category;
ALTER TABLE stages DROP COLUMN forecast_category;
