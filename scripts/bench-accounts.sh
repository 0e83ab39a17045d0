#!/usr/bin/env bash
# Latency of `GET /api/v1/accounts?limit=50` under concurrent load against the demo data,
# next to the same query run directly in Postgres (pgbench), in the same run.
#
#   scripts/bench-accounts.sh            # defaults: 30 s, 32 connections, 2 wrk threads
#   DURATION=10 CONNECTIONS=64 scripts/bench-accounts.sh
#
# Needs: a local Postgres (as for the README), wrk (apt-get install wrk), pgbench.
set -euo pipefail
cd "$(dirname "$0")/.."

DB_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/crm_bench}
PORT=${PORT:-18080}
DURATION=${DURATION:-30}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
SECRET=bench-secret-bench-secret-bench-secret-0123

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }

cargo build --release --locked -p crm-server >/dev/null
BIN=target/release/crm

DATABASE_URL=$DB_URL CRM_LOG_FORMAT=json $BIN seed-demo >/dev/null 2>&1
DATABASE_URL=$DB_URL CRM_BIND=127.0.0.1:$PORT CRM_JWT_SECRET=$SECRET CRM_LOG_FORMAT=json \
  $BIN serve >/tmp/crm-bench-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done

token() {
  curl -fs "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"demo1234\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

LUA=$(mktemp --suffix=.lua)
run_wrk() { # who token
  cat >"$LUA" <<LUA
wrk.headers["Authorization"] = "Bearer $2"
LUA
  echo "== wrk: GET /api/v1/accounts?limit=50 as $1 (${CONNECTIONS} connections, ${DURATION}s)"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" \
    "http://127.0.0.1:$PORT/api/v1/accounts?limit=50" | grep -E 'Latency|50%|90%|99%|Requests/sec|Non-2xx' || true
}

DIRECTOR=$(token director@demo.local)
MANAGER=$(token manager1@demo.local)
REP=$(token rep1@demo.local)
echo "rows visible: director=$(curl -fs "http://127.0.0.1:$PORT/api/v1/accounts?limit=200" -H "Authorization: Bearer $DIRECTOR" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')+ (page of 200)"
run_wrk "director (scope all)" "$DIRECTOR"
run_wrk "manager1 (scope team_and_below)" "$MANAGER"
run_wrk "rep1 (scope own)" "$REP"

# The same statement the endpoint runs for the director, straight into Postgres.
SQL=$(mktemp --suffix=.sql)
cat >"$SQL" <<'SQL'
SELECT a.* FROM accounts a WHERE a.deleted_at IS NULL ORDER BY a.created_at DESC, a.id DESC LIMIT 51;
SQL
echo "== pgbench: the director's list query directly (${CONNECTIONS} clients, ${DURATION}s, prepared)"
pgbench -n -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" -f "$SQL" "$DB_URL" 2>/dev/null \
  | grep -E 'latency average|tps' || true
echo "== plan"
psql "$DB_URL" -Atc "EXPLAIN ANALYZE $(cat "$SQL")" | head -8
rm -f "$LUA" "$SQL"
