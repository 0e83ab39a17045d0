-- Integrations: outgoing webhooks (subscriptions, deliveries, attempts), group robots
-- (DingTalk, WeCom channels and their message queue) and inbound lead capture forms.

-- A webhook subscription acts as its owner limited to one role (like an API key): the
-- role's data scope decides which records' events it gets, its field permissions shape
-- the payload. `secret` signs deliveries; after a rotation `previous_secret` also signs
-- until `previous_secret_until`. `failing_since`: the first failed attempt since the
-- last success (continuous failure disables the subscription).
CREATE TABLE webhooks (
    id uuid PRIMARY KEY,
    url text NOT NULL,
    description text NOT NULL DEFAULT '',
    event_types text[] NOT NULL,
    condition jsonb,
    role_id uuid NOT NULL REFERENCES roles (id),
    owner_id uuid NOT NULL REFERENCES users (id),
    enabled boolean NOT NULL DEFAULT true,
    secret text NOT NULL,
    previous_secret text,
    previous_secret_until timestamptz,
    failing_since timestamptz,
    disabled_at timestamptz,
    disabled_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version integer NOT NULL DEFAULT 1
);

-- One delivery of one event to one subscription; `body` is the exact payload signed and
-- sent. Deliveries of one record to one subscription go out in `id` order: only the
-- oldest pending one of a record is due. A redelivery is a new row (`redelivery_of`).
CREATE TABLE webhook_deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    record_id uuid,
    body text NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status integer,
    last_latency_ms integer,
    last_error text,
    last_response text,
    redelivery_of bigint REFERENCES webhook_deliveries (id) ON DELETE SET NULL
);
-- Handling an event twice creates one delivery.
CREATE UNIQUE INDEX webhook_deliveries_event_idx ON webhook_deliveries (webhook_id, event_id)
    WHERE redelivery_of IS NULL AND event_type <> 'webhook.test';
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (webhook_id, record_id, id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, id DESC);
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (webhook_id, created_at);

-- Every attempt of a delivery: the delivery log's detail.
CREATE TABLE webhook_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    attempted_at timestamptz NOT NULL,
    status integer,
    latency_ms integer NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    error text,
    response text
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- The webhook subscriber starts at the current end of the stream: subscriptions only
-- get events written after they were created anyway.
INSERT INTO outbox_subscribers (name, position)
SELECT 'webhooks', coalesce(max(seq), 0) FROM outbox_commits
ON CONFLICT (name) DO NOTHING;

-- Group robots. DingTalk: `url` is the robot's webhook URL, `secret` its optional
-- signing secret; WeCom: `url` is built from the robot's key (kept in `secret`).
CREATE TABLE channels (
    id uuid PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('dingtalk', 'wecom')),
    name text NOT NULL,
    url text NOT NULL,
    secret text,
    enabled boolean NOT NULL DEFAULT true,
    per_minute integer NOT NULL DEFAULT 20 CHECK (per_minute BETWEEN 1 AND 20),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version integer NOT NULL DEFAULT 1
);

-- Messages waiting for (or sent to) a robot. Several waiting messages are merged into
-- one digest when the robot's rate leaves no room for each on its own.
CREATE TABLE channel_messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    dedupe_key text,
    title text NOT NULL,
    body text NOT NULL,
    link text,
    mentions text[] NOT NULL DEFAULT '{}',
    state text NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'sent', 'failed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    send_id bigint,
    error text
);
CREATE UNIQUE INDEX channel_messages_dedupe_idx ON channel_messages (channel_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
CREATE INDEX channel_messages_waiting_idx ON channel_messages (channel_id, id) WHERE state = 'waiting';

-- Each request made to a robot (one message or one digest): the rate window.
CREATE TABLE channel_sends (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    sent_at timestamptz NOT NULL,
    messages integer NOT NULL,
    status integer,
    error text
);
CREATE INDEX channel_sends_window_idx ON channel_sends (channel_id, sent_at DESC);

-- A user's choice to get their personal notifications in a channel too.
CREATE TABLE user_channels (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    mobile text
);

-- Web-to-lead capture forms. `mapping`: form field -> lead field or `custom.<key>`.
-- Leads are created as `owner_id` (then the assignment rules apply).
CREATE TABLE capture_forms (
    id uuid PRIMARY KEY,
    form_key text NOT NULL UNIQUE,
    name text NOT NULL,
    allowed_origins text[] NOT NULL DEFAULT '{}',
    mapping jsonb NOT NULL,
    source text,
    campaign text,
    owner_id uuid NOT NULL REFERENCES users (id),
    honeypot text NOT NULL DEFAULT 'website',
    per_address_per_hour integer NOT NULL DEFAULT 20,
    per_form_per_hour integer NOT NULL DEFAULT 2000,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version integer NOT NULL DEFAULT 1
);

-- What each accepted submission came to (for the admin): `created`, `duplicate` (an
-- open lead matched; nothing created) or `spam` (the honeypot was filled).
CREATE TABLE capture_submissions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    form_id uuid NOT NULL REFERENCES capture_forms (id) ON DELETE CASCADE,
    received_at timestamptz NOT NULL,
    client text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('created', 'duplicate', 'spam')),
    lead_id uuid
);
CREATE INDEX capture_submissions_form_idx ON capture_submissions (form_id, id DESC);

-- Capture counters per form and client address (`*` for the whole form) per hour.
CREATE TABLE capture_counters (
    form_id uuid NOT NULL REFERENCES capture_forms (id) ON DELETE CASCADE,
    client text NOT NULL,
    window_start timestamptz NOT NULL,
    hits integer NOT NULL,
    PRIMARY KEY (form_id, client, window_start)
);
