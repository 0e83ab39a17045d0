-- The lead response SLA, one row per assigned lead: when the first response is due
-- (set at assignment from the `lead_sla` setting and the business calendar), where the
-- lead stands (`pending` until answered or due; `met` or `breached`, set by the
-- response or by the minute sweep at the due time) and how many minutes the response
-- took. (Its own table: `leads` is at diesel's 32-column limit.)
CREATE TABLE lead_slas (
    lead_id          uuid PRIMARY KEY REFERENCES leads (id) ON DELETE CASCADE,
    assigned_at      timestamptz NOT NULL,
    due_at           timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'met', 'breached')),
    responded_at     timestamptz,
    response_minutes integer
);

-- The sweep's queue: pending SLAs by due time; the list filter by status.
CREATE INDEX lead_slas_pending_idx ON lead_slas (due_at) WHERE status = 'pending';
CREATE INDEX lead_slas_status_idx ON lead_slas (status, lead_id);

-- Leads assigned before this migration: one wall-clock hour from assignment.
INSERT INTO lead_slas (lead_id, assigned_at, due_at, status, responded_at, response_minutes)
SELECT id, assigned_at, assigned_at + interval '1 hour',
       CASE WHEN first_response_at IS NULL THEN 'pending'
            WHEN first_response_at <= assigned_at + interval '1 hour' THEN 'met'
            ELSE 'breached' END,
       first_response_at,
       CASE WHEN first_response_at IS NOT NULL
            THEN greatest(0, floor(extract(epoch FROM first_response_at - assigned_at) / 60))::integer END
  FROM leads WHERE assigned_at IS NOT NULL;
