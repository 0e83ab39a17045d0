#!/usr/bin/env bash
# Board and list latency with one million opportunities, next to the same SQL run
# directly in Postgres (pgbench), in the same run.
#
#   scripts/bench-pipeline.sh                 # 1,000,000 deals, 20 s per run, 16 connections
#   DEALS=200000 DURATION=10 scripts/bench-pipeline.sh
#
# Needs a local Postgres (as for the README), wrk and pgbench. Loads into crm_bench_1m
# (kept between runs; the load is skipped when the deals are already there).
set -euo pipefail
cd "$(dirname "$0")/.."

DB_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/crm_bench_1m}
DEALS=${DEALS:-1000000}
PORT=${PORT:-18081}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
SECRET=bench-secret-bench-secret-bench-secret-0123

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
cargo build --release --locked -p crm-server >/dev/null
BIN=target/release/crm
DATABASE_URL=$DB_URL CRM_LOG_FORMAT=json $BIN seed-demo >/dev/null 2>&1

have=$(psql "$DB_URL" -Atc "SELECT count(*) FROM opportunities")
if [ "$have" -lt "$DEALS" ]; then
  echo "loading $((DEALS - have)) deals..."
  start=$(date +%s)
  psql "$DB_URL" -q -v ON_ERROR_STOP=1 <<SQL
-- Setup data, not business writes: past the audit capture's guard.
SET crm.unaudited_writes = 'allowed';
-- Bulk load without the per-row rollup trigger, then rebuild the rollups once. No
-- autovacuum until the script's own VACUUM below, so that the first figures are those
-- of a table whose visibility map is not fresh (as after heavy writes).
ALTER TABLE opportunities SET (autovacuum_enabled = false);
ALTER TABLE opportunities DISABLE TRIGGER opportunity_totals;
ALTER TABLE opportunities DISABLE TRIGGER opportunity_totals_forecast;
WITH acc AS (SELECT array_agg(id ORDER BY id) ids, array_agg(owner_id ORDER BY id) owners,
                    array_agg(team_id ORDER BY id) teams, count(*)::int n FROM accounts),
     st AS (SELECT array_agg(s.id ORDER BY position) ids, array_agg(probability ORDER BY position) probs,
                   array_agg(kind ORDER BY position) kinds, min(s.pipeline_id::text)::uuid pipeline_id
            FROM stages s JOIN pipelines p ON p.id = s.pipeline_id WHERE p.is_default AND s.archived_at IS NULL)
INSERT INTO opportunities (id, name, account_id, pipeline_id, stage_id, amount, currency, expected_close_date,
                           probability, owner_id, team_id, status, lost_reason, closed_at, stage_entered_at,
                           created_by, created_at, updated_at)
SELECT gen_random_uuid(), 'Bulk deal ' || g, acc.ids[1 + g % acc.n], st.pipeline_id, st.ids[x.k],
       round((random() * 1000000)::numeric, 2), CASE WHEN g % 10 = 0 THEN 'USD' ELSE 'CNY' END, current_date + (random() * 365)::int, st.probs[x.k],
       acc.owners[1 + g % acc.n], acc.teams[1 + g % acc.n],
       CASE st.kinds[x.k] WHEN 'won' THEN 'won' WHEN 'lost' THEN 'lost' ELSE 'open' END,
       CASE WHEN st.kinds[x.k] = 'lost' THEN 'bulk' END,
       CASE WHEN st.kinds[x.k] <> 'open' THEN now() END,
       now() - random() * interval '500 days', acc.owners[1 + g % acc.n],
       now() - random() * interval '540 days', now() - random() * interval '60 days'
FROM generate_series(1, $((DEALS - have))) g, acc, st,
     LATERAL (SELECT 1 + abs(hashtext(g::text)) % 7 AS k) x;
ALTER TABLE opportunities ENABLE TRIGGER opportunity_totals;
ALTER TABLE opportunities ENABLE TRIGGER opportunity_totals_forecast;
SELECT rebuild_opportunity_stage_totals();
SELECT rebuild_opportunity_forecast_totals();
ANALYZE opportunities, opportunity_stage_totals, opportunity_month_totals, opportunity_day_totals;
SQL
  echo "loaded in $(( $(date +%s) - start ))s"
fi
echo "deals: $(psql "$DB_URL" -Atc "SELECT count(*) FROM opportunities")"

DATABASE_URL=$DB_URL CRM_BIND=127.0.0.1:$PORT CRM_JWT_SECRET=$SECRET CRM_LOG_FORMAT=json RUST_LOG=warn \
  $BIN serve >/tmp/crm-bench-pipeline.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done

token() {
  curl -fs "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"demo1234\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
PIPELINE=$(psql "$DB_URL" -Atc "SELECT id FROM pipelines WHERE is_default")
LUA=$(mktemp --suffix=.lua)
run_wrk() { # label token path
  printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$2" >"$LUA"
  echo "== wrk: $1  GET $3"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" "http://127.0.0.1:$PORT$3" \
    | grep -E '^\s+(50|90|99)%|Requests/sec|Non-2xx' || true
}
DIRECTOR=$(token director@demo.local)
MANAGER=$(token manager1@demo.local)
REP=$(token rep1@demo.local)
run_wrk "director, board (all 1M deals)" "$DIRECTOR" "/api/v1/pipelines/$PIPELINE/board"
run_wrk "manager1, board (region)" "$MANAGER" "/api/v1/pipelines/$PIPELINE/board"
run_wrk "rep1, board (own)" "$REP" "/api/v1/pipelines/$PIPELINE/board"
vm_state() {
  psql "$DB_URL" -Atc "CREATE EXTENSION IF NOT EXISTS pg_visibility" >/dev/null 2>&1 || true
  echo "== visibility map of opportunities: $(psql "$DB_URL" -Atc "SELECT round(100.0 * all_visible / greatest(pg_relation_size('opportunities') / 8192, 1), 1) || '% of pages all-visible' FROM pg_visibility_map_summary('opportunities')" 2>/dev/null || echo unknown)"
}
BY_CLOSE_PATHS=("close_before=$(date -d '+30 days' +%F)" "close_after=$(date -d '+10 days' +%F)&close_before=$(date -d '+100 days' +%F)" "close_after=$(date +%F)")
by_close_wrk() {
  for q in "${BY_CLOSE_PATHS[@]}"; do
    run_wrk "director, board filtered by close date, $1 (month + day rollups)" "$DIRECTOR" "/api/v1/pipelines/$PIPELINE/board?$q"
  done
}
vm_state
by_close_wrk "before VACUUM"
run_wrk "director, list limit=50" "$DIRECTOR" "/api/v1/opportunities?limit=50"
run_wrk "director, list sort=-amount" "$DIRECTOR" "/api/v1/opportunities?limit=50&sort=-amount"
run_wrk "manager1, list limit=50" "$MANAGER" "/api/v1/opportunities?limit=50"

STAGES=$(psql "$DB_URL" -Atc "SELECT '{' || string_agg(id::text, ',' ORDER BY position) || '}' FROM stages WHERE pipeline_id = '$PIPELINE' AND archived_at IS NULL")
SQLF=$(mktemp --suffix=.sql)
bench_sql() { # label sql
  echo "$2" >"$SQLF"
  echo "== pgbench: $1"
  pgbench -n -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" -f "$SQLF" "$DB_URL" 2>/dev/null | grep -E 'latency average|tps' || true
}
ROLLUP="SELECT t.stage_id, sum(t.deals), sum(t.amount), round(sum(t.amount_x_prob)/100, 2) FROM opportunity_stage_totals t WHERE t.stage_id = ANY('$STAGES'::uuid[]) GROUP BY t.stage_id;"
TOTALS="SELECT o.stage_id, count(*), coalesce(sum(o.amount),0), round(coalesce(sum(o.amount*o.probability/100.0),0),2) FROM opportunities o WHERE o.deleted_at IS NULL AND o.stage_id = ANY('$STAGES'::uuid[]) GROUP BY o.stage_id;"
CARDS="SELECT c.* FROM unnest('$STAGES'::uuid[]) s(id) CROSS JOIN LATERAL (SELECT o.* FROM opportunities o WHERE o.stage_id = s.id AND o.deleted_at IS NULL ORDER BY o.updated_at DESC, o.id DESC LIMIT 21) c;"
CLOSE_TO=$(date -d '+30 days' +%F); EDGE_FROM=$(date -d '+30 days' +%Y-%m-01)
BY_CLOSE="SELECT x.stage_id, x.currency, sum(x.n), sum(x.a), round(sum(x.axp)/100, 2) FROM (SELECT t.stage_id, t.currency, t.deals n, t.amount a, t.amount_x_prob axp FROM opportunity_month_totals t WHERE t.stage_id = ANY('$STAGES'::uuid[]) AND t.close_month > DATE '0001-01-01' AND t.close_month < '$EDGE_FROM' UNION ALL SELECT d.stage_id, d.currency, d.deals, d.amount, d.amount_x_prob FROM opportunity_day_totals d WHERE d.close_date >= '$EDGE_FROM' AND d.close_date < '$CLOSE_TO' AND d.stage_id = ANY('$STAGES'::uuid[])) x GROUP BY x.stage_id, x.currency;"
# What the board read before the day rollup: the edge month aggregated from the deals,
# fast only by an index-only scan, i.e. while the visibility map is fresh.
BY_CLOSE_LIVE="SELECT o.stage_id, o.currency, count(*), coalesce(sum(o.amount), 0), round(coalesce(sum(o.amount * o.probability), 0)/100, 2) FROM opportunities o WHERE o.deleted_at IS NULL AND o.stage_id = ANY('$STAGES'::uuid[]) AND o.expected_close_date >= '$EDGE_FROM' AND o.expected_close_date < '$CLOSE_TO' GROUP BY 1, 2;"
CARDS_CLOSE="SELECT c.* FROM unnest('$STAGES'::uuid[]) s(id) CROSS JOIN LATERAL (SELECT o.* FROM opportunities o WHERE o.stage_id = s.id AND o.deleted_at IS NULL AND o.expected_close_date < '$CLOSE_TO' ORDER BY o.updated_at DESC, o.id DESC LIMIT 21) c;"
LIST="SELECT o.* FROM opportunities o WHERE o.deleted_at IS NULL ORDER BY o.created_at DESC, o.id DESC LIMIT 51;"
bench_sql "board totals from the rollup (SQL only)" "$ROLLUP"
bench_sql "board totals, live aggregate over all deals (SQL only)" "$TOTALS"
bench_sql "board totals with close_before, month + day rollups (SQL only)" "$BY_CLOSE"
bench_sql "board totals with close_before, month rollup + live edge month from the deals, before VACUUM (SQL only, the former plan)" "$BY_CLOSE_LIVE"
bench_sql "board cards with close_before, 20 per stage (SQL only)" "$CARDS_CLOSE"
bench_sql "board cards, 20 per stage (SQL only)" "$CARDS"
bench_sql "list limit=50 (SQL only)" "$LIST"
echo "== VACUUM ANALYZE opportunities"
psql "$DB_URL" -qc "VACUUM ANALYZE opportunities"
vm_state
by_close_wrk "after VACUUM"
bench_sql "board totals with close_before, month + day rollups, after VACUUM (SQL only)" "$BY_CLOSE"
bench_sql "live edge month from the deals, after VACUUM (SQL only, the former plan)" "$BY_CLOSE_LIVE"
psql "$DB_URL" -qc "ALTER TABLE opportunities RESET (autovacuum_enabled)"
echo "== plans"
psql "$DB_URL" -Atc "EXPLAIN (ANALYZE, BUFFERS OFF) $TOTALS" | grep -E "Scan|Aggregate|Execution"
psql "$DB_URL" -Atc "EXPLAIN (ANALYZE, BUFFERS OFF) $BY_CLOSE" | grep -E "Scan|Heap Fetches|Execution"
psql "$DB_URL" -Atc "EXPLAIN (ANALYZE, BUFFERS OFF) $CARDS_CLOSE" | grep -E "Scan|Limit|Execution"
psql "$DB_URL" -Atc "EXPLAIN (ANALYZE, BUFFERS OFF) $CARDS" | grep -E "Scan|Limit|Execution"
rm -f "$LUA" "$SQLF"
