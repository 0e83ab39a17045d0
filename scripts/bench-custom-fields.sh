#!/usr/bin/env bash
# Filtering one million opportunities on custom fields: a single-select (`segment`)
# and a number range (`score`), over HTTP (wrk) next to the same SQL (pgbench), with
# the query plans. Uses the crm_bench_1m database of scripts/bench-pipeline.sh (run
# that first); defines the fields through the API and fills values once.
set -euo pipefail
cd "$(dirname "$0")/.."

DB_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/crm_bench_1m}
PORT=${PORT:-18082}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-16}
SECRET=bench-secret-bench-secret-bench-secret-0123

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
cargo build --release --locked -p crm-server >/dev/null
DATABASE_URL=$DB_URL CRM_BIND=127.0.0.1:$PORT CRM_JWT_SECRET=$SECRET CRM_LOG_FORMAT=json RUST_LOG=warn \
  target/release/crm serve >/tmp/crm-bench-custom.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.3; done
token() {
  curl -fs "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"demo1234\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
ADMIN=$(token admin@demo.local)
DIRECTOR=$(token director@demo.local)

if [ "$(psql "$DB_URL" -Atc "SELECT count(*) FROM field_definitions WHERE object = 'opportunities' AND key IN ('segment','score')")" -lt 2 ]; then
  for body in \
    '{"key":"segment","label_zh":"细分","label_en":"Segment","type":"single_select","filterable":true,"settings":{"options":[{"key":"smb","label_zh":"小企业","label_en":"SMB"},{"key":"mid","label_zh":"中型","label_en":"Mid-market"},{"key":"ent","label_zh":"大客户","label_en":"Enterprise"}]}}' \
    '{"key":"score","label_zh":"评分","label_en":"Score","type":"integer","filterable":true,"settings":{"min":0,"max":100}}'; do
    curl -fs "http://127.0.0.1:$PORT/api/v1/admin/fields/opportunities" -H "Authorization: Bearer $ADMIN" \
      -H 'content-type: application/json' -d "$body" >/dev/null
  done
fi
if [ "$(psql "$DB_URL" -Atc "SELECT count(*) FROM opportunities WHERE custom ? 'segment'")" -eq 0 ]; then
  echo "filling custom values on every deal..."
  start=$(date +%s)
  psql "$DB_URL" -q -v ON_ERROR_STOP=1 <<'SQL'
UPDATE opportunities SET custom = custom || jsonb_build_object(
    'segment', (ARRAY['smb','mid','ent'])[1 + abs(hashtext(id::text)) % 3],
    'score', (abs(hashtext(id::text || 's')) % 101)::text);
VACUUM ANALYZE opportunities;
SQL
  echo "filled in $(( $(date +%s) - start ))s"
fi

LUA=$(mktemp --suffix=.lua)
printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$DIRECTOR" >"$LUA"
run() {
  echo "== wrk: GET $1"
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" "http://127.0.0.1:$PORT$1" | grep -E '^\s+(50|90|99)%|Requests/sec|Non-2xx' || true
}
run "/api/v1/opportunities?limit=50&custom.segment=ent"
run "/api/v1/opportunities?limit=50&custom.score_gte=90&custom.score_lte=92"
run "/api/v1/opportunities?limit=50&custom.score_gte=90&custom.score_lte=92&sort=-custom.score"
run "/api/v1/opportunities?limit=50&custom.segment=ent&custom.score_gte=99"

SEG="SELECT o.* FROM opportunities o WHERE o.deleted_at IS NULL AND o.custom @> '{\"segment\": \"ent\"}' ORDER BY o.created_at DESC, o.id DESC LIMIT 51"
RANGE="SELECT o.* FROM opportunities o WHERE o.deleted_at IS NULL AND coalesce(crm_num(o.custom->>'score'), -999999999999999999999999999) >= 90 AND coalesce(crm_num(o.custom->>'score'), -999999999999999999999999999) <= 92 AND o.custom ? 'score' ORDER BY o.created_at DESC, o.id DESC LIMIT 51"
SORTED="SELECT o.* FROM opportunities o WHERE o.deleted_at IS NULL AND coalesce(crm_num(o.custom->>'score'), -999999999999999999999999999) >= 90 AND coalesce(crm_num(o.custom->>'score'), -999999999999999999999999999) <= 92 AND o.custom ? 'score' ORDER BY coalesce(crm_num(o.custom->>'score'), -999999999999999999999999999) DESC, o.id DESC LIMIT 51"
SQLF=$(mktemp --suffix=.sql)
for q in "$SEG" "$RANGE" "$SORTED"; do
  echo "$q;" >"$SQLF"
  echo "== pgbench: $(echo "$q" | cut -c1-150)..."
  pgbench -n -M prepared -c "$CONNECTIONS" -j 2 -T "$DURATION" -f "$SQLF" "$DB_URL" 2>/dev/null | grep -E 'latency average|tps' || true
  psql "$DB_URL" -Atc "EXPLAIN (ANALYZE, BUFFERS OFF) $q" | grep -E "Scan|Sort|Limit|Execution" | head -6
done
rm -f "$LUA" "$SQLF"
