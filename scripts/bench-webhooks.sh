#!/usr/bin/env bash
# Webhook delivery figures against the local Postgres (a fresh database of its own) and
# local receivers on loopback: deliveries per second to three fast receivers, and the
# same with a fourth subscription whose receiver answers in 5 s (the others should not
# notice).
#
#   scripts/bench-webhooks.sh                      # 3,000 deliveries, 4 delivery threads
#   DELIVERIES=9000 THREADS=4 scripts/bench-webhooks.sh
#
# Needs: a local Postgres (as for the README).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked -q -p crm-worker --bench webhooks
