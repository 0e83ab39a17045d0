-- Forecast categories: each stage has a default (pipeline, best case, commit, closed,
-- omitted) and a deal may override it. Forecast snapshots record the open pipeline by
-- category once per business day, so "what did we commit at the start of the quarter"
-- can be answered later.
ALTER TABLE stages ADD COLUMN forecast_category text NOT NULL DEFAULT 'pipeline'
    CHECK (forecast_category IN ('pipeline', 'best_case', 'commit', 'closed', 'omitted'));
UPDATE stages SET forecast_category = CASE
    WHEN kind = 'won' THEN 'closed'
    WHEN kind = 'lost' THEN 'omitted'
    WHEN code = 'closing' THEN 'commit'
    WHEN code IN ('proposal', 'negotiation') THEN 'best_case'
    ELSE 'pipeline' END;

ALTER TABLE opportunities ADD COLUMN forecast_category text
    CHECK (forecast_category IN ('pipeline', 'best_case', 'commit', 'closed', 'omitted'));

CREATE TABLE forecast_snapshots (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The business date the snapshot describes (one per day, whoever takes it).
    taken_on      date NOT NULL,
    taken_at      timestamptz NOT NULL DEFAULT now(),
    owner_id      uuid NOT NULL REFERENCES users (id),
    team_id       uuid REFERENCES teams (id),
    pipeline_id   uuid NOT NULL REFERENCES pipelines (id),
    category      text NOT NULL,
    -- First day of the expected close month (none: no date).
    close_month   date,
    currency      text NOT NULL,
    deals         integer NOT NULL,
    amount        numeric(18, 2) NOT NULL,
    weighted      numeric(18, 2) NOT NULL
);
CREATE UNIQUE INDEX forecast_snapshots_key ON forecast_snapshots
    (taken_on, owner_id, coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid), pipeline_id, category,
     coalesce(close_month, '0001-01-01'::date), currency);
CREATE INDEX forecast_snapshots_owner_idx ON forecast_snapshots (owner_id, taken_on);
CREATE INDEX forecast_snapshots_team_idx ON forecast_snapshots (team_id, taken_on);

-- The funnel reads where each stage visit went next. Kept on the visit itself, by a
-- trigger in the same transaction as the move (whoever writes the history), so the
-- report needs no per-row lookup of the following visit.
ALTER TABLE stage_history ADD COLUMN next_stage_id uuid REFERENCES stages (id);
UPDATE stage_history h SET next_stage_id = n.next
FROM (SELECT id, lead(to_stage_id) OVER (PARTITION BY opportunity_id ORDER BY entered_at, id) AS next
      FROM stage_history) n
WHERE n.id = h.id AND n.next IS NOT NULL;

CREATE FUNCTION stage_history_link_previous() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE stage_history SET next_stage_id = NEW.to_stage_id
    WHERE id = (SELECT p.id FROM stage_history p
                WHERE p.opportunity_id = NEW.opportunity_id AND (p.entered_at, p.id) < (NEW.entered_at, NEW.id)
                ORDER BY p.entered_at DESC, p.id DESC LIMIT 1);
    RETURN NULL;
END $$;
CREATE TRIGGER stage_history_link_previous AFTER INSERT ON stage_history
    FOR EACH ROW EXECUTE FUNCTION stage_history_link_previous();

-- Report periods read these moments.
CREATE INDEX contracts_signed_at_idx ON contracts (signed_at) WHERE deleted_at IS NULL AND signed_at IS NOT NULL;
CREATE INDEX lead_slas_assigned_at_idx ON lead_slas (assigned_at);
