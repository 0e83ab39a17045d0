DROP TRIGGER opportunity_totals_months ON opportunities;
DROP FUNCTION opportunity_month_totals_trigger();
DROP FUNCTION opportunity_month_totals_add(uuid, date, uuid, uuid, bigint, numeric, numeric);
DROP INDEX opportunities_close_totals_idx;
DROP TABLE opportunity_month_totals;
DROP FUNCTION opportunity_close_month(date);
CREATE OR REPLACE FUNCTION rebuild_opportunity_stage_totals() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM opportunity_stage_totals;
    INSERT INTO opportunity_stage_totals (stage_id, owner_id, team_id, deals, amount, amount_x_prob)
    SELECT stage_id, owner_id, coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid),
           count(*), coalesce(sum(amount), 0), coalesce(sum(amount * probability), 0)
    FROM opportunities WHERE deleted_at IS NULL
    GROUP BY 1, 2, 3;
$$;
