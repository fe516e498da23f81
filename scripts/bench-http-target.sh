#!/usr/bin/env bash
# HTTP target throughput (#21), side by side with a plain client in the same run
# (host/benches/http_target.rs): a plain hyper-util client POSTing N ~300-byte JSON events at
# concurrency C to a local API answering after 2 ms, vs weir (file -> [sink] type = "http",
# max_concurrency = C), and weir with batch_size = 10.
# Usage: scripts/bench-http-target.sh [EVENTS] [CONCURRENCY]   (default 50000 events, concurrency 64)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50000}
c=${2:-64}
# The bench profile is release's, with line tables: weir's binary is built with it too.
cargo bench --locked -j 2 -p weir --bench http_target -- "$n" --concurrency="$c"
