-- Customer tiering: the rules (setting `account_tiering`) place each account in tier A,
-- B, C or D from its value (contracts signed, payments received), activity (recent
-- follow-ups) and potential (open pipeline); recomputed daily and when a related
-- record changes. Every change of an account's tier by the rules is kept here with
-- the figures it was decided on.
CREATE TABLE account_tier_history (
    id          bigserial PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id),
    tier_from   text CHECK (tier_from IN ('A', 'B', 'C', 'D')),
    tier_to     text CHECK (tier_to IN ('A', 'B', 'C', 'D')),
    -- `schedule` (the daily run or a recompute), `change` (a related record changed).
    cause       text NOT NULL CHECK (cause IN ('schedule', 'change')),
    -- The figures the rules read, and which rule matched (its index; none: the default).
    metrics     jsonb NOT NULL,
    rule_index  integer,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_tier_history_account_idx ON account_tier_history (account_id, id DESC);

-- The tiering subscriber starts at the current end of the stream (the daily run covers
-- what came before).
INSERT INTO outbox_subscribers (name, position)
SELECT 'tiering', coalesce(max(seq), 0) FROM outbox_commits
ON CONFLICT (name) DO NOTHING;
