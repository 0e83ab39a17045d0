DROP TRIGGER stage_win_totals ON stage_history;
DROP TRIGGER stage_win_totals ON opportunities;
DROP FUNCTION rebuild_stage_win_totals();
DROP FUNCTION stage_win_visit_trigger();
DROP FUNCTION stage_win_deal_trigger();
DROP FUNCTION stage_win_counts(opportunities);
DROP FUNCTION stage_win_add(opportunities, stage_history[], bigint);
DROP TABLE stage_win_totals;
