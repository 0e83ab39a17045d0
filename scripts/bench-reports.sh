#!/usr/bin/env bash
# Report latency at volume: one million deals, five million stage-history rows and ten
# million activities (plus leads, SLAs, contracts and payments), p50 / p99 per fixed
# report and for five ad-hoc queries through the API (wrk), next to the same SQL run
# directly in Postgres (pgbench), in the same run.
#
#   scripts/bench-reports.sh                              # 1M deals, 5M history, 10M activities
#   DEALS=200000 ACTIVITIES=2000000 DURATION=10 scripts/bench-reports.sh
#   BIN=target/debug/crm LOAD_ONLY=1 scripts/bench-reports.sh  # load now, measure later
#
# At the full volumes the process, funnel and pipeline reports take seconds (see the
# SQL-only figures); wrk waits up to 30 s per request so that they print a latency
# rather than 0 (wrk's default 2 s timeout counts them as errors, not as latencies).
#
# Needs a local Postgres (as for the README), wrk and pgbench. Loads into
# crm_bench_reports (kept between runs; the load is skipped when the rows are there).
# Bulk rows bypass the audit capture and per-row triggers (setup data, not business
# writes) and the derived columns are filled once; the table is then ANALYZEd and
# VACUUMed, and the plans printed at the end say which indexes the figures rely on.
set -euo pipefail
cd "$(dirname "$0")/.."

DB_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/crm_bench_reports}
DEALS=${DEALS:-1000000}
ACTIVITIES=${ACTIVITIES:-10000000}
LEADS=${LEADS:-$((DEALS / 2))}
CONTRACTS=${CONTRACTS:-$((DEALS / 10))}
PORT=${PORT:-18082}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-4}
THREADS=${THREADS:-2}
SECRET=bench-secret-bench-secret-bench-secret-0123

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
# LOAD_ONLY=1 loads (with any crm binary given as BIN) and stops before measuring.
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -p crm-server >/dev/null
  BIN=target/release/crm
fi
DATABASE_URL=$DB_URL CRM_LOG_FORMAT=json $BIN seed-demo >/dev/null 2>&1

# psql ignores standard input when given -c, so the session setting goes in front.
bulk() { { echo "SET crm.unaudited_writes = 'allowed';"; cat; } | psql "$DB_URL" -q -v ON_ERROR_STOP=1 "$@"; }
count() { psql "$DB_URL" -Atc "SELECT count(*) FROM $1"; }

have=$(count opportunities)
if [ "$have" -lt "$DEALS" ]; then
  echo "loading $((DEALS - have)) deals with five stage visits each..."
  start=$(date +%s)
  bulk <<SQL
ALTER TABLE opportunities DISABLE TRIGGER USER;
ALTER TABLE stage_history DISABLE TRIGGER USER;
WITH acc AS (SELECT array_agg(id ORDER BY id) ids, array_agg(owner_id ORDER BY id) owners,
                    array_agg(team_id ORDER BY id) teams, count(*)::int n FROM accounts WHERE deleted_at IS NULL),
     st AS (SELECT array_agg(s.id ORDER BY position) ids, array_agg(probability ORDER BY position) probs,
                   array_agg(kind ORDER BY position) kinds, min(s.pipeline_id::text)::uuid pipeline_id
            FROM stages s JOIN pipelines p ON p.id = s.pipeline_id WHERE p.is_default AND s.archived_at IS NULL)
INSERT INTO opportunities (id, name, account_id, pipeline_id, stage_id, amount, currency, expected_close_date,
                           probability, owner_id, team_id, status, lost_reason, closed_at, stage_entered_at,
                           created_by, created_at, updated_at)
SELECT gen_random_uuid(), 'Bulk deal ' || g, acc.ids[1 + g % acc.n], st.pipeline_id, st.ids[x.k],
       round((random() * 1000000)::numeric, 2), CASE WHEN g % 20 = 0 THEN 'USD' ELSE 'CNY' END,
       current_date + (random() * 365)::int - 90, st.probs[x.k],
       acc.owners[1 + g % acc.n], acc.teams[1 + g % acc.n],
       CASE st.kinds[x.k] WHEN 'won' THEN 'won' WHEN 'lost' THEN 'lost' ELSE 'open' END,
       CASE WHEN st.kinds[x.k] = 'lost' THEN 'bulk' END,
       CASE WHEN st.kinds[x.k] <> 'open' THEN y.created + random() * interval '120 days' END,
       y.created + random() * interval '60 days', acc.owners[1 + g % acc.n], y.created, now()
FROM generate_series(1, $((DEALS - have))) g, acc, st,
     LATERAL (SELECT 1 + abs(hashtext(g::text)) % 7 AS k) x,
     LATERAL (SELECT now() - interval '120 days' - random() * interval '420 days' AS created) y;
-- Five visits per bulk deal, from the first stage to its current one.
WITH st AS (SELECT array_agg(s.id ORDER BY position) ids
            FROM stages s JOIN pipelines p ON p.id = s.pipeline_id WHERE p.is_default AND s.archived_at IS NULL)
INSERT INTO stage_history (opportunity_id, from_stage_id, to_stage_id, entered_at, left_at, changed_by, amount,
                           probability, next_stage_id)
SELECT o.id, CASE WHEN v > 1 THEN st.ids[1 + ((v - 2) * (x.k - 1)) / 4] END, st.ids[1 + ((v - 1) * (x.k - 1)) / 4],
       o.created_at + (v - 1) * x.d, CASE WHEN v < 5 THEN o.created_at + v * x.d END, o.owner_id, o.amount,
       o.probability, CASE WHEN v < 5 THEN st.ids[1 + (v * (x.k - 1)) / 4] END
FROM opportunities o CROSS JOIN st CROSS JOIN generate_series(1, 5) v,
     LATERAL (SELECT array_position(st.ids, o.stage_id) AS k,
                     (coalesce(o.closed_at, now()) - o.created_at) / 5 AS d) x
WHERE o.name LIKE 'Bulk deal %';
-- What the stage_history_relink trigger keeps: each visit's previous entry into its stage.
UPDATE stage_history h SET prev_entered_at = p.prev
FROM (SELECT id, lag(entered_at) OVER (PARTITION BY opportunity_id, to_stage_id ORDER BY entered_at, id) AS prev
      FROM stage_history) p
WHERE p.id = h.id AND p.prev IS DISTINCT FROM h.prev_entered_at;
SELECT rebuild_stage_win_totals();
ALTER TABLE opportunities ENABLE TRIGGER USER;
ALTER TABLE stage_history ENABLE TRIGGER USER;
SELECT rebuild_opportunity_stage_totals();
SELECT rebuild_opportunity_forecast_totals();
SQL
  echo "deals and history loaded in $(( $(date +%s) - start ))s"
fi

have=$(count activities)
if [ "$have" -lt "$ACTIVITIES" ]; then
  echo "loading $((ACTIVITIES - have)) activities..."
  start=$(date +%s)
  bulk <<SQL
ALTER TABLE activities DISABLE TRIGGER USER;
WITH d AS (SELECT array_agg(id) ids, array_agg(account_id) accs, array_agg(owner_id) owners,
                  array_agg(team_id) teams, count(*)::int n FROM opportunities)
INSERT INTO activities (id, activity_type, subject, occurred_at, account_id, opportunity_id, owner_id, team_id,
                        created_by, created_at, updated_at)
SELECT gen_random_uuid(), (ARRAY['call', 'visit', 'meeting', 'email', 'note'])[1 + g % 5], 'Bulk follow-up',
       now() - random() * interval '540 days', d.accs[1 + g % d.n], d.ids[1 + g % d.n], d.owners[1 + g % d.n],
       d.teams[1 + g % d.n], d.owners[1 + g % d.n], now(), now()
FROM generate_series(1, $((ACTIVITIES - have))) g, d;
ALTER TABLE activities ENABLE TRIGGER USER;
SELECT rebuild_activity_day_totals(NULL);
SQL
  echo "activities loaded in $(( $(date +%s) - start ))s"
fi

have=$(count leads)
if [ "$have" -lt "$LEADS" ]; then
  echo "loading $((LEADS - have)) leads with SLAs, $CONTRACTS contracts with payments..."
  start=$(date +%s)
  bulk <<SQL
ALTER TABLE leads DISABLE TRIGGER USER;
ALTER TABLE contracts DISABLE TRIGGER USER;
ALTER TABLE payments DISABLE TRIGGER USER;
WITH u AS (SELECT array_agg(id) ids, array_agg(team_id) teams, count(*)::int n FROM users WHERE NOT is_service)
INSERT INTO leads (id, person_name, source, region, industry, owner_id, team_id, status, assigned_at,
                   converted_at, created_at, updated_at)
SELECT gen_random_uuid(), 'Bulk lead ' || g, (ARRAY['website', 'event', 'referral', 'partner'])[1 + g % 4],
       (ARRAY['east', 'north', 'south'])[1 + g % 3], (ARRAY['energy', 'finance', 'retail'])[1 + g % 3],
       u.ids[1 + g % u.n], u.teams[1 + g % u.n], CASE WHEN g % 5 = 0 THEN 'qualified' ELSE 'assigned' END,
       x.created + interval '1 hour', NULL, x.created, now()
FROM generate_series(1, $((LEADS - have))) g, u,
     LATERAL (SELECT now() - random() * interval '540 days' AS created) x;
INSERT INTO lead_slas (lead_id, assigned_at, due_at, status, responded_at, response_minutes)
SELECT l.id, l.assigned_at, l.assigned_at + interval '4 hours',
       CASE WHEN m.v < 240 THEN 'met' ELSE 'breached' END, l.assigned_at + m.v * interval '1 minute', m.v
FROM leads l, LATERAL (SELECT (random() * 480)::int AS v) m
WHERE l.person_name LIKE 'Bulk lead %' ON CONFLICT DO NOTHING;
INSERT INTO contracts (id, number, opportunity_id, account_id, title, amount, currency, lines, status, signed_at,
                       owner_id, team_id, created_at, updated_at)
SELECT gen_random_uuid(), 'BULK-' || row_number() OVER (), o.id, o.account_id, o.name, coalesce(o.amount, 0) + 1,
       o.currency, '[]', 'signed', o.closed_at, o.owner_id, o.team_id, o.closed_at, now()
FROM opportunities o WHERE o.status = 'won' AND o.name LIKE 'Bulk deal %' LIMIT $CONTRACTS;
INSERT INTO payments (id, contract_id, account_id, amount, received_on, method, owner_id, team_id)
SELECT gen_random_uuid(), c.id, c.account_id, round(c.amount / 2, 2), (c.signed_at + p * interval '30 days')::date,
       'bank_transfer', c.owner_id, c.team_id
FROM contracts c CROSS JOIN generate_series(1, 2) p WHERE c.number LIKE 'BULK-%';
ALTER TABLE leads ENABLE TRIGGER USER;
ALTER TABLE contracts ENABLE TRIGGER USER;
ALTER TABLE payments ENABLE TRIGGER USER;
SQL
  echo "leads, contracts and payments loaded in $(( $(date +%s) - start ))s"
fi
psql "$DB_URL" -q -c "VACUUM ANALYZE opportunities, stage_history, activities, leads, lead_slas, contracts, payments"
for t in opportunities stage_history activities leads lead_slas contracts payments; do
  printf '%-14s %s rows\n' "$t" "$(count $t)"
done

[ -n "${LOAD_ONLY:-}" ] && exit 0

DATABASE_URL=$DB_URL CRM_BIND=127.0.0.1:$PORT CRM_JWT_SECRET=$SECRET CRM_LOG_FORMAT=json RUST_LOG=warn \
  CRM_NO_WORKER=true $BIN serve >/tmp/crm-bench-reports.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done

token() {
  curl -fs "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"demo1234\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
DIRECTOR=$(token director@demo.local)
MANAGER=$(token manager1@demo.local)
LUA=$(mktemp --suffix=.lua)
run_wrk() { # label token path [json body]
  if [ $# -ge 4 ]; then
    python3 - "$2" "$4" >"$LUA" <<'PY'
import json, sys
print('wrk.method = "POST"')
print('wrk.headers["Authorization"] = "Bearer %s"' % sys.argv[1])
print('wrk.headers["Content-Type"] = "application/json"')
print('wrk.body = %s' % json.dumps(sys.argv[2]))
PY
  else
    printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$2" >"$LUA"
  fi
  echo "== wrk: $1  ${4:+POST }${4:-GET }$3"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 30s --latency -s "$LUA" "http://127.0.0.1:$PORT$3" \
    | grep -E '^\s+(50|99)%|Requests/sec|Non-2xx' || true
  drain
}
# wrk stops at its duration, but the server finishes the statements of the requests
# it dropped: wait for them (up to a minute) so that they do not slow the next figure.
drain() {
  for _ in $(seq 1 120); do
    n=$(psql "$DB_URL" -Atc "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                             AND state = 'active' AND pid <> pg_backend_pid()")
    [ "$n" = 0 ] && return
    sleep 0.5
  done
  echo "   (statements still running after a minute)"
}
Q=period=this_quarter
run_wrk "director, results (all deals)" "$DIRECTOR" "/api/v1/reports/results?$Q"
run_wrk "director, results by owner" "$DIRECTOR" "/api/v1/reports/results?$Q&group_by=owner"
run_wrk "manager1, results by owner (region)" "$MANAGER" "/api/v1/reports/results?$Q&group_by=owner"
run_wrk "director, process" "$DIRECTOR" "/api/v1/reports/process?$Q"
run_wrk "director, funnel" "$DIRECTOR" "/api/v1/reports/funnel?$Q"
run_wrk "director, funnel by owner" "$DIRECTOR" "/api/v1/reports/funnel?$Q&group_by=owner"
run_wrk "director, pipeline and forecast" "$DIRECTOR" "/api/v1/reports/pipeline"
run_wrk "ad hoc 1: deals by stage and month created" "$DIRECTOR" "/api/v1/reports/query" \
  '{"object":"opportunities","measures":[{"agg":"count"},{"agg":"sum","field":"amount"}],"dimensions":[{"field":"stage.code"},{"field":"created_at","bucket":"month"}]}'
run_wrk "ad hoc 2: won amount by account industry" "$DIRECTOR" "/api/v1/reports/query" \
  '{"object":"opportunities","measures":[{"agg":"sum","field":"amount"}],"dimensions":[{"field":"account.industry"}],"filter":{"field":"status","op":"eq","value":"won"}}'
run_wrk "ad hoc 3: activities by type and week, last 90 days" "$DIRECTOR" "/api/v1/reports/query" \
  "{\"object\":\"activities\",\"measures\":[{\"agg\":\"count\"}],\"dimensions\":[{\"field\":\"type\"},{\"field\":\"occurred_at\",\"bucket\":\"week\"}],\"filter\":{\"field\":\"occurred_at\",\"op\":\"gte\",\"value\":\"$(date -d '-90 days' +%F)\"}}"
run_wrk "ad hoc 4: average dwell days by stage" "$DIRECTOR" "/api/v1/reports/query" \
  '{"object":"stage_history","measures":[{"agg":"avg","field":"dwell_days"},{"agg":"count"}],"dimensions":[{"field":"stage.code"}]}'
run_wrk "ad hoc 5: payments by month" "$DIRECTOR" "/api/v1/reports/query" \
  '{"object":"payments","measures":[{"agg":"sum","field":"amount"}],"dimensions":[{"field":"received_on","bucket":"month"}]}'

# The same statements the reports run, with the director's (unscoped) parameters.
day() { psql "$DB_URL" -Atc "SELECT to_char($1, 'YYYY-MM-DD') || 'T00:00:00+08:00'"; }
QUARTER="date_trunc('quarter', now() AT TIME ZONE 'Asia/Shanghai')"
QS=$(day "$QUARTER"); QE=$(day "$QUARTER + interval '3 months'"); PS=$(day "$QUARTER - interval '3 months'")
PIPELINE=$(psql "$DB_URL" -Atc "SELECT id FROM pipelines WHERE is_default")
STAGES=$(psql "$DB_URL" -Atc "SELECT '{' || string_agg(id::text, ',') || '}' FROM stages WHERE pipeline_id = '$PIPELINE'")
SQLF=$(mktemp --suffix=.sql)
bench_sql() { # label sql
  echo "$2" >"$SQLF"
  echo "== pgbench: $1"
  pgbench -n -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" -f "$SQLF" "$DB_URL" 2>/dev/null | grep -E 'latency average|tps' || true
}
WON="SELECT x.grp, GROUPING(x.grp) = 1, x.cur, x.split, sum(x.amount), count(*), round(avg(x.amount), 2) FROM (SELECT o.owner_id::text AS grp, o.closed_at >= '$QS' AS cur, coalesce(o.currency, '') AS split, o.amount FROM opportunities o JOIN accounts a ON a.id = o.account_id WHERE o.deleted_at IS NULL AND o.status = 'won' AND o.closed_at >= '$PS' AND o.closed_at < '$QE') x GROUP BY GROUPING SETS ((x.grp, x.cur, x.split), (x.cur, x.split));"
ACTS="SELECT x.cur, x.split, count(*) FROM (SELECT act.occurred_at >= '$QS' AS cur, act.activity_type AS split FROM activities act WHERE act.deleted_at IS NULL AND act.occurred_at >= '$PS' AND act.occurred_at < '$QE') x GROUP BY x.cur, x.split;"
FUNNEL="SELECT x.stage_id, x.cur, count(*) FILTER (WHERE x.first), count(*), count(*) FILTER (WHERE ns.kind = 'won' OR (ns.kind = 'open' AND ns.position > s.position)), count(*) FILTER (WHERE ns.kind = 'lost'), count(*) FILTER (WHERE x.first AND x.status = 'won'), round(avg(x.dwell), 1), round((percentile_cont(0.5) WITHIN GROUP (ORDER BY x.dwell))::numeric, 1) FROM (SELECT h.opportunity_id, h.to_stage_id AS stage_id, o.status, extract(epoch FROM h.left_at - h.entered_at) / 86400.0 AS dwell, h.next_stage_id AS next_stage, h.entered_at >= '$QS' AS cur, (h.prev_entered_at IS NULL OR h.prev_entered_at < CASE WHEN h.entered_at >= '$QS' THEN '$QS'::timestamptz ELSE '$PS'::timestamptz END) AS first FROM stage_history h JOIN opportunities o ON o.id = h.opportunity_id AND o.deleted_at IS NULL WHERE h.to_stage_id = ANY('$STAGES'::uuid[]) AND h.entered_at >= '$PS' AND h.entered_at < '$QE') x JOIN stages s ON s.id = x.stage_id LEFT JOIN stages ns ON ns.id = x.next_stage AND ns.pipeline_id = '$PIPELINE' GROUP BY x.stage_id, x.cur;"
PIPE="SELECT to_char(o.expected_close_date, 'YYYY-MM'), o.stage_id, coalesce(o.forecast_category, s.forecast_category), o.currency, count(*), coalesce(sum(o.amount), 0), round(coalesce(sum(o.amount * o.probability / 100.0), 0), 2) FROM opportunities o JOIN stages s ON s.id = o.stage_id WHERE o.deleted_at IS NULL AND o.status = 'open' GROUP BY 1, 2, 3, 4;"
# What the process and pipeline reports read instead (the trigger-kept rollups), and
# the pipeline's stage history (once per request).
ACTS_ROLLUP="SELECT x.cur, x.split, sum(x.n) FROM (SELECT act.day >= '${QS%T*}' AS cur, act.activity_type AS split, act.activities AS n FROM activity_day_totals act WHERE act.activities <> 0 AND act.day >= '${PS%T*}' AND act.day < '${QE%T*}') x GROUP BY x.cur, x.split;"
PIPE_ROLLUP="SELECT to_char(nullif(t.close_date, '-infinity'), 'YYYY-MM'), t.stage_id, coalesce(nullif(t.forecast_category, ''), s.forecast_category), t.currency, sum(t.deals), coalesce(sum(t.amount), 0), round(coalesce(sum(t.amount_x_prob) / 100.0, 0), 2) FROM opportunity_forecast_totals t JOIN stages s ON s.id = t.stage_id WHERE t.deals <> 0 GROUP BY 1, 2, 3, 4;"
HIST="SELECT h.to_stage_id, round(100.0 * count(*) FILTER (WHERE o.status = 'won' AND (h.prev_entered_at IS NULL OR h.prev_entered_at < now() - interval '365 days')) / nullif(count(*) FILTER (WHERE h.prev_entered_at IS NULL OR h.prev_entered_at < now() - interval '365 days'), 0), 2), (avg(extract(epoch FROM o.closed_at - h.entered_at)) FILTER (WHERE o.status = 'won'))::float8 FROM stage_history h JOIN opportunities o ON o.id = h.opportunity_id WHERE o.deleted_at IS NULL AND o.status IN ('won', 'lost') AND h.entered_at >= now() - interval '365 days' GROUP BY h.to_stage_id;"
bench_sql "results, won deals by owner (SQL only)" "$WON"
bench_sql "process, activities by type (SQL only, records)" "$ACTS"
bench_sql "process, activities by type (SQL only, rollup the report reads)" "$ACTS_ROLLUP"
bench_sql "funnel entries and next stages (SQL only)" "$FUNNEL"
bench_sql "open pipeline by month, stage, category (SQL only, records)" "$PIPE"
bench_sql "open pipeline by month, stage, category (SQL only, rollup the report reads)" "$PIPE_ROLLUP"
HIST_ROLLUP="SELECT t.stage_id, round(100.0 * sum(t.won_visits) FILTER (WHERE t.prev_on < current_date - 365) / nullif(sum(t.visits) FILTER (WHERE t.prev_on < current_date - 365), 0), 2), (sum(t.won_secs) / nullif(sum(t.won_visits), 0))::float8 FROM stage_win_totals t WHERE t.entered_on >= current_date - 365 GROUP BY t.stage_id HAVING sum(t.visits) <> 0;"
bench_sql "pipeline, stage history forecast input (SQL only, records)" "$HIST"
bench_sql "pipeline, stage history forecast input (SQL only, rollup the report reads)" "$HIST_ROLLUP"
echo "== plans"
for q in "$WON" "$ACTS" "$ACTS_ROLLUP" "$FUNNEL" "$PIPE" "$PIPE_ROLLUP" "$HIST" "$HIST_ROLLUP"; do
  psql "$DB_URL" -Atc "EXPLAIN (ANALYZE, BUFFERS OFF) $q" | grep -E "Scan on|Heap Fetches|Execution" | head -6
done
rm -f "$LUA" "$SQLF"
