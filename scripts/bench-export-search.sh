#!/usr/bin/env bash
# Searchable custom fields and CSV exports over one million opportunities.
#   - `q` search with a searchable custom text field: wrk latency and the plan (each
#     arm of the OR on its own trigram index);
#   - exports of a rep's deals, a team's and ~100,000 rows: rows, bytes, time, and the
#     server's peak resident memory.
# Uses the crm_bench_1m database of scripts/bench-pipeline.sh (run that first).
set -euo pipefail
cd "$(dirname "$0")/.."

DB_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/crm_bench_1m}
PORT=${PORT:-18083}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-16}
SECRET=bench-secret-bench-secret-bench-secret-0123

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
cargo build --release --locked -p crm-server >/dev/null
DATABASE_URL=$DB_URL CRM_BIND=127.0.0.1:$PORT CRM_JWT_SECRET=$SECRET CRM_LOG_FORMAT=json RUST_LOG=warn \
  target/release/crm serve >/tmp/crm-bench-export.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.3; done
token() {
  curl -fs "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"demo1234\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
ADMIN=$(token admin@demo.local)
DIRECTOR=$(token director@demo.local)
MANAGER=$(token manager1@demo.local)
REP=$(token rep1@demo.local)

if [ "$(psql "$DB_URL" -Atc "SELECT count(*) FROM field_definitions WHERE object = 'opportunities' AND key = 'project_code'")" -eq 0 ]; then
  curl -fs "http://127.0.0.1:$PORT/api/v1/admin/fields/opportunities" -H "Authorization: Bearer $ADMIN" \
    -H 'content-type: application/json' \
    -d '{"key":"project_code","label_zh":"项目编号","label_en":"Project code","type":"text","searchable":true}' >/dev/null
fi
if [ "$(psql "$DB_URL" -Atc "SELECT count(*) FROM opportunities WHERE custom ? 'project_code'")" -eq 0 ]; then
  echo "filling project codes on every deal..."
  start=$(date +%s)
  psql "$DB_URL" -q -v ON_ERROR_STOP=1 <<'SQL'
UPDATE opportunities SET custom = custom || jsonb_build_object(
    'project_code', 'PRJ-' || lpad((abs(hashtext(id::text)) % 10000000)::text, 7, '0') || '-华东');
VACUUM ANALYZE opportunities;
SQL
  echo "filled in $(( $(date +%s) - start ))s"
fi
CODE=$(psql "$DB_URL" -Atc "SELECT substr(custom->>'project_code', 1, 11) FROM opportunities WHERE deleted_at IS NULL LIMIT 1")
ENC=$(python3 -c "import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1]))" "$CODE")

export_one() { # label token query
  local out
  out=$(curl -s -o /tmp/crm-bench-export.csv -w '%{http_code} %{size_download} %{time_total}' \
    -H "Authorization: Bearer $2" "http://127.0.0.1:$PORT/api/v1/opportunities/export?$3")
  read -r code bytes secs <<<"$out"
  rows=$(($(wc -l </tmp/crm-bench-export.csv) - 1))
  printf '== export %-40s status %s rows %7d bytes %10d time %6.2fs  server peak RSS %s\n' \
    "$1" "$code" "$rows" "$bytes" "$secs" "$(grep VmHWM /proc/$SERVER/status | awk '{print $2 $3}')"
}
echo "== server RSS before exports: $(grep VmRSS /proc/$SERVER/status | awk '{print $2 $3}')"
export_one "rep1 (no export permission)" "$REP" ""
export_one "manager1 (team and below), open" "$MANAGER" "status=open"
CUT=$(psql "$DB_URL" -Atc "SELECT amount FROM opportunities WHERE deleted_at IS NULL AND amount IS NOT NULL ORDER BY amount DESC OFFSET 95000 LIMIT 1")
export_one "director amount_gte=$CUT (~95k rows)" "$DIRECTOR" "amount_gte=$CUT"
export_one "director everything (over the cap)" "$DIRECTOR" ""
LUA=$(mktemp --suffix=.lua)
printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$DIRECTOR" >"$LUA"
echo "== wrk: GET /api/v1/opportunities?limit=50&q=$CODE (director, matches name or custom.project_code)"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" \
  "http://127.0.0.1:$PORT/api/v1/opportunities?limit=50&q=$ENC" | grep -E '^\s+(50|90|99)%|Requests/sec|Non-2xx' || true
Q="SELECT o.* FROM opportunities o WHERE o.deleted_at IS NULL AND ((o.name ILIKE '%$CODE%') OR (o.custom->>'project_code') ILIKE '%$CODE%') ORDER BY o.created_at DESC, o.id DESC LIMIT 51"
psql "$DB_URL" -Atc "EXPLAIN (ANALYZE, BUFFERS OFF) $Q" | grep -E "Scan|BitmapOr|Sort|Limit|Execution" | head -8

rm -f "$LUA" /tmp/crm-bench-export.csv
