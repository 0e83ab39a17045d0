-- Durable background work: a job queue, the outbox in commit order with a position per
-- subscriber, schedules that fire once per period across instances, and in-app
-- notifications (the first subscriber).

-- Jobs. `waiting` jobs run at `run_at`; a claimed job is `running` with a lease
-- (`locked_until`) held by `locked_by`; a job that used its attempts is `dead` with its
-- last error. A finished job is deleted. `unique_key`: a second enqueue while one with
-- that key waits is a no-op.
CREATE TABLE background_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue text NOT NULL,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    state text NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'running', 'dead')),
    priority smallint NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
    unique_key text,
    locked_by text,
    locked_until timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- What a worker of one queue claims next.
CREATE INDEX background_jobs_waiting_idx ON background_jobs (queue, priority DESC, run_at, id)
    WHERE state = 'waiting';
CREATE INDEX background_jobs_running_idx ON background_jobs (queue, locked_until)
    WHERE state = 'running';
-- The admin view of dead jobs, latest first (partial: claims and retries of live jobs
-- do not pay for it).
CREATE INDEX background_jobs_dead_idx ON background_jobs (updated_at DESC, id DESC) WHERE state = 'dead';
CREATE UNIQUE INDEX background_jobs_unique_waiting_idx ON background_jobs (unique_key)
    WHERE state = 'waiting' AND unique_key IS NOT NULL;

-- Workers wake on this channel (payload: the queue) and fall back to polling.
CREATE FUNCTION crm_notify_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crm_jobs', NEW.queue);
    RETURN NULL;
END
$$;
CREATE TRIGGER background_jobs_notify AFTER INSERT ON background_jobs
    FOR EACH ROW EXECUTE FUNCTION crm_notify_job();

-- Periodic work: one row per schedule. A worker that moves `next_run_at` past now (a
-- conditional update: only one instance succeeds per period) enqueues that period's job.
CREATE TABLE job_schedules (
    name text PRIMARY KEY,
    queue text NOT NULL,
    kind text NOT NULL,
    every_secs integer NOT NULL CHECK (every_secs > 0),
    next_run_at timestamptz NOT NULL,
    last_run_at timestamptz
);

-- The outbox in commit order. Identity order is not commit order (a slower transaction
-- can take a smaller id and commit later), so every transaction that writes events
-- takes a commit sequence number at commit time: a deferred trigger, under one advisory
-- lock held until the commit is visible. A reader that follows `seq` never skips.
ALTER TABLE outbox_events ADD COLUMN tx_id bigint;
ALTER TABLE outbox_events ALTER COLUMN tx_id SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX outbox_events_tx_idx ON outbox_events (tx_id);
-- Readers follow the commit sequence, not `published_at`; the index on unpublished rows
-- only cost writes.
DROP INDEX outbox_events_unpublished_idx;
CREATE INDEX outbox_events_occurred_idx ON outbox_events (occurred_at);

CREATE TABLE outbox_commits (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id bigint NOT NULL UNIQUE,
    committed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Pruning by age.
CREATE INDEX outbox_commits_committed_idx ON outbox_commits (committed_at);

CREATE FUNCTION crm_outbox_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('crm.outbox_tx', true) IS DISTINCT FROM NEW.tx_id::text THEN
        -- Serialises only the last moment of event-writing commits: the next one takes
        -- its number after this one is visible.
        PERFORM pg_advisory_xact_lock(7165706232);
        INSERT INTO outbox_commits (tx_id) VALUES (NEW.tx_id) ON CONFLICT (tx_id) DO NOTHING;
        PERFORM set_config('crm.outbox_tx', NEW.tx_id::text, true);
        PERFORM pg_notify('crm_outbox', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER outbox_events_commit AFTER INSERT ON outbox_events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION crm_outbox_commit();

-- Each subscriber's position: the last commit sequence it has handled. A new subscriber
-- starts at the current end (events before it existed are not replayed).
CREATE TABLE outbox_subscribers (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- In-app notifications. One per (user, event, kind): handling an event twice is a no-op.
CREATE TABLE notifications (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    kind text NOT NULL,
    event_id uuid NOT NULL,
    object_type text NOT NULL,
    object_id uuid NOT NULL,
    title_zh text NOT NULL,
    title_en text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at timestamptz,
    UNIQUE (user_id, event_id, kind)
);
CREATE INDEX notifications_user_idx ON notifications (user_id, (read_at IS NOT NULL), created_at DESC, id DESC);
-- `unread_count` and mark-all-read.
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;

-- Kinds a user has muted.
CREATE TABLE notification_mutes (
    user_id uuid NOT NULL REFERENCES users (id),
    kind text NOT NULL,
    PRIMARY KEY (user_id, kind)
);

-- The built-in subscriber starts at the beginning of commit sequencing, so no event
-- written before a worker first runs is missed.
INSERT INTO outbox_subscribers (name, position) VALUES ('notifications', 0);
