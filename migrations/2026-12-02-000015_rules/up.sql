-- The rule engine: "if ... then ..." automation configured by business users.
--
-- A rule's definition (triggers, condition, actions, re-enrollment) is versioned: the
-- current one is on `rules`, every one it ever had in `rule_versions`; a run records
-- the version it ran.
CREATE TABLE rules (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description        text NOT NULL DEFAULT '',
    object             text NOT NULL,
    definition         jsonb NOT NULL,
    rule_version       integer NOT NULL DEFAULT 1,
    acts_as            uuid NOT NULL REFERENCES users (id),
    enabled            boolean NOT NULL DEFAULT false,
    archived_at        timestamptz,
    -- Auto-pause: more runs than this in an hour disables the rule (null: never).
    max_runs_per_hour  integer CHECK (max_runs_per_hour IS NULL OR max_runs_per_hour > 0),
    paused_at          timestamptz,
    paused_reason      text,
    -- The seeded default rules carry their scenario's key.
    seed_key           text UNIQUE,
    created_by         uuid REFERENCES users (id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    version            integer NOT NULL DEFAULT 1
);
CREATE INDEX rules_enabled_idx ON rules (object) WHERE enabled AND archived_at IS NULL;

CREATE TABLE rule_versions (
    rule_id     uuid NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    name        text NOT NULL,
    definition  jsonb NOT NULL,
    created_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);

-- One run: a rule considered for one record because of one event or timer.
-- `status`: done (matched, actions ran), skipped (did not enrol: `reason`), failed
-- (an action failed: `error`; retryable), waiting (a `wait` action holds the rest),
-- loop_guard (the chain of rules triggering rules was too deep).
CREATE TABLE rule_runs (
    id           bigserial PRIMARY KEY,
    rule_id      uuid NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    rule_version integer NOT NULL,
    trigger      text NOT NULL,
    event_id     uuid,
    timer_id     bigint,
    -- The timer's occurrence (its token: the year of a yearly date, the stage entry).
    occurrence   text,
    object       text NOT NULL,
    record_id    uuid NOT NULL,
    status       text NOT NULL CHECK (status IN ('done', 'skipped', 'failed', 'waiting', 'loop_guard')),
    reason       text,
    conditions   jsonb NOT NULL DEFAULT '[]',
    actions      jsonb NOT NULL DEFAULT '[]',
    error        text,
    depth        integer NOT NULL DEFAULT 1,
    retry_of     bigint REFERENCES rule_runs (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz
);
-- Handling an event twice runs a rule once for it.
CREATE UNIQUE INDEX rule_runs_event_key ON rule_runs (rule_id, event_id, record_id)
    WHERE event_id IS NOT NULL AND retry_of IS NULL;
-- Firing a timer's occurrence twice runs a rule once for it.
CREATE UNIQUE INDEX rule_runs_timer_key ON rule_runs (rule_id, timer_id, occurrence)
    WHERE timer_id IS NOT NULL AND retry_of IS NULL;
CREATE INDEX rule_runs_rule_idx ON rule_runs (rule_id, id DESC);
CREATE INDEX rule_runs_rate_idx ON rule_runs (rule_id, created_at) WHERE status IN ('done', 'waiting');

-- Enrollment: whether the record matched the rule's condition when last considered,
-- and how often it enrolled (went from not matching to matching).
CREATE TABLE rule_enrollments (
    rule_id      uuid NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    record_id    uuid NOT NULL,
    matching     boolean NOT NULL,
    times        integer NOT NULL DEFAULT 0,
    enrolled_at  timestamptz,
    PRIMARY KEY (rule_id, record_id)
);

-- Time triggers, one per (rule, trigger, record), due at an exact moment. `token`
-- names the occurrence (the year of a yearly date, the stage entry of a time in
-- stage), so one occurrence fires once. One `rules.timers` job waits for the earliest
-- pending timer.
CREATE TABLE rule_timers (
    id             bigserial PRIMARY KEY,
    rule_id        uuid NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    trigger_index  integer NOT NULL,
    record_id      uuid NOT NULL,
    due_at         timestamptz NOT NULL,
    token          text NOT NULL,
    state          text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'fired')),
    fired_at       timestamptz,
    UNIQUE (rule_id, trigger_index, record_id)
);
CREATE INDEX rule_timers_due_idx ON rule_timers (due_at, id) WHERE state = 'pending';

-- Round-robin positions of assignment actions: (rule, action) -> last user given one.
CREATE TABLE rule_cursors (
    rule_id       uuid NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    action_index  integer NOT NULL,
    last_user_id  uuid,
    PRIMARY KEY (rule_id, action_index)
);

-- The rule subscriber starts at the current end of the stream.
INSERT INTO outbox_subscribers (name, position)
SELECT 'rules', coalesce(max(seq), 0) FROM outbox_commits
ON CONFLICT (name) DO NOTHING;

-- `webhooks.sweep` looks for due pending deliveries by time.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
