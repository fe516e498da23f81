#!/usr/bin/env bash
# Enrichment throughput (#20), side by side with baselines in the same run (host/benches/enrich.rs):
#   HTTP   a plain tokio client doing N GETs against a local API answering after 2 ms, vs weir
#          (file -> enrich-rs with rates_url -> file) at the same concurrency
#   Redis  one lookup per event in a table of 1,000 customers, cache off and on, vs the same
#          pipeline without the plugin (needs the machine's Redis on 127.0.0.1:6379)
# Usage: scripts/bench-enrich.sh [EVENTS] [CONCURRENCY]   (default 100000 events, concurrency 64)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
c=${2:-64}
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "error: Redis does not answer on 127.0.0.1:6379 (the lookup rows need it)" >&2
  exit 1
fi
scripts/build-plugins.sh
# The bench profile is release's, with line tables: weir's binary is built with it too.
cargo bench --locked -j 2 -p weir --bench enrich -- "$n" --concurrency="$c"
