#!/usr/bin/env bash
# Rule engine figures against the local Postgres (a fresh database of its own): events
# per second through 50 enabled rules, scheduling a time-in-stage rule over a million
# deals, and the lateness (p50 / p99) of time triggers beside that many pending timers.
#
#   scripts/bench-rules.sh                                   # 1,000,000 deals
#   OPPORTUNITIES=200000 EVENTS=5000 TIMERS=5000 scripts/bench-rules.sh
#   PROFILE=dev scripts/bench-rules.sh                      # reuse the debug build
#
# Needs: a local Postgres (as for the README).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked -q --profile "${PROFILE:-bench}" -p crm-worker --bench rules
