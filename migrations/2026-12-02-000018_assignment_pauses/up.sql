-- A user out of the automatic assignment rotation until a moment (leave, a full
-- pipeline): rules' round robin and least-loaded picks skip them meanwhile.
CREATE TABLE assignment_pauses (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    until      timestamptz NOT NULL,
    reason     text,
    updated_at timestamptz NOT NULL
);
