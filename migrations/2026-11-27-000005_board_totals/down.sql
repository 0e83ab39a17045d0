DROP TRIGGER opportunity_totals ON opportunities;
DROP FUNCTION rebuild_opportunity_stage_totals();
DROP FUNCTION opportunity_totals_trigger();
DROP FUNCTION opportunity_totals_add(uuid, uuid, uuid, bigint, numeric, numeric);
DROP TABLE opportunity_stage_totals;
