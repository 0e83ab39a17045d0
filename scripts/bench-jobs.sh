#!/usr/bin/env bash
# Background work throughput and dispatcher lag against the local Postgres (a fresh
# database of its own, dropped afterwards): jobs per second for no-op and notification
# jobs with 1 and 4 worker threads, and commit-to-handled lag (p50 / p99) of the outbox
# dispatcher under a steady write load.
#
#   scripts/bench-jobs.sh                          # 5,000 jobs per run, 200 writes/s for 10 s
#   JOBS=20000 WRITE_RATE=500 WRITE_SECS=20 scripts/bench-jobs.sh
#
# Needs: a local Postgres (as for the README).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked -q -p crm-worker --bench throughput
