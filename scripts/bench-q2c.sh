#!/usr/bin/env bash
# Quote-to-cash reads under concurrent load against the demo data (~3,400 contracts,
# ~5,900 quotes, ~4,400 payments): receivables with ageing (finance, scope all, and a
# rep), the quote list, the approval inbox. Prints wrk latency percentiles and the
# receivables statement timed straight in Postgres.
#
#   scripts/bench-q2c.sh                 # defaults: 20 s, 16 connections, 2 wrk threads
#   DURATION=10 CONNECTIONS=32 scripts/bench-q2c.sh
#
# Needs: a local Postgres (as for the README), wrk (apt-get install wrk), psql.
set -euo pipefail
cd "$(dirname "$0")/.."

DB_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/crm_bench}
PORT=${PORT:-18082}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
SECRET=bench-secret-bench-secret-bench-secret-0123

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }

cargo build --release --locked -p crm-server >/dev/null
BIN=target/release/crm

DATABASE_URL=$DB_URL CRM_LOG_FORMAT=json $BIN seed-demo >/dev/null 2>&1
DATABASE_URL=$DB_URL CRM_BIND=127.0.0.1:$PORT CRM_JWT_SECRET=$SECRET CRM_LOG_FORMAT=json \
  $BIN serve >/tmp/crm-bench-q2c.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done

token() {
  curl -fs "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"demo1234\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

LUA=$(mktemp --suffix=.lua)
run_wrk() { # label token path
  cat >"$LUA" <<LUA
wrk.headers["Authorization"] = "Bearer $2"
LUA
  echo "== wrk: GET $3 as $1 (${CONNECTIONS} connections, ${DURATION}s)"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" \
    "http://127.0.0.1:$PORT$3" | grep -E '50%|90%|99%|Requests/sec|Non-2xx' || true
}

FINANCE=$(token finance1@demo.local)
DIRECTOR=$(token director@demo.local)
REP=$(token rep1@demo.local)
psql -qtA "$DB_URL" -c "SELECT 'contracts=' || count(*) FROM contracts" -c "SELECT 'quotes=' || count(*) FROM quotes" \
  -c "SELECT 'payments=' || count(*) FROM payments"
run_wrk "finance1 (scope all)" "$FINANCE" "/api/v1/receivables?limit=50"
run_wrk "finance1 (scope all)" "$FINANCE" "/api/v1/receivables?group_by=account&overdue=true&limit=50"
run_wrk "rep1 (scope own)" "$REP" "/api/v1/receivables?limit=50"
run_wrk "director (scope all)" "$DIRECTOR" "/api/v1/quotes?limit=50"
run_wrk "director" "$DIRECTOR" "/api/v1/me/approvals"

echo "== psql: the receivables statement for scope all, grouped by account (EXPLAIN ANALYZE execution time)"
TODAY=$(TZ=Asia/Shanghai date +%F)
psql -qtA "$DB_URL" <<SQL | grep -E 'Execution Time'
EXPLAIN ANALYZE
WITH per AS (SELECT k.id, k.account_id, k.amount, coalesce(pay.total, 0) AS received, coalesce(ins.overdue, 0) AS overdue
 FROM contracts k
 LEFT JOIN (SELECT x.contract_id, sum(x.open) FILTER (WHERE x.late >= 1) AS overdue
   FROM (SELECT i.contract_id, ('$TODAY'::date - i.due_date) AS late, greatest(i.amount - coalesce(al.paid, 0), 0) AS open
         FROM installments i LEFT JOIN (SELECT installment_id, sum(amount) AS paid FROM payment_allocations
           GROUP BY installment_id) al ON al.installment_id = i.id) x GROUP BY x.contract_id) ins ON ins.contract_id = k.id
 LEFT JOIN (SELECT contract_id, sum(amount) AS total FROM payments GROUP BY contract_id) pay ON pay.contract_id = k.id
 WHERE k.deleted_at IS NULL AND (k.status IN ('signed', 'active', 'completed') OR pay.total IS NOT NULL))
SELECT k.account_id, max(a.name), sum(k.amount), sum(k.received), sum(k.overdue)
FROM per k JOIN accounts a ON a.id = k.account_id GROUP BY 1 ORDER BY sum(k.overdue) DESC LIMIT 50;
SQL
