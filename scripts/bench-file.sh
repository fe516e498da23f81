#!/usr/bin/env bash
# Throughput of a file -> filter -> file pipeline, side by side with baselines in the same run:
#   cat   copying the file (the I/O ceiling)
#   jq    `jq -c 'select(...)'`, the filter people write by hand in shell glue
#   weir  the same filter as an EventBridge pattern, with checkpoints, accounting and the DLQ,
#         with and without its admin server and metrics
# Usage: scripts/bench-file.sh [EVENTS]   (default 1000000 events of ~400 bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
# weir's admin server on a free port: a weir service on this machine keeps its 9464.
export WEIR_ADMIN__ADDRESS=${WEIR_ADMIN__ADDRESS:-127.0.0.1:0}
n=${1:-1000000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

cargo build --release --locked -q -p weir
python3 scripts/orders.py "$n" > "$dir/in.jsonl"
bytes=$(stat -c %s "$dir/in.jsonl")
cat > "$dir/p.toml" <<TOML
[pipeline]
name = "bench"
[source]
type = "file"
path = "$dir/in.jsonl"
batch_size = 1024
[[filter]]
pattern = '{"data": {"detail": {"department": ["billing"]}}}'
[sink]
type = "file"
path = "$dir/out-weir.jsonl"
TOML

. scripts/timed.sh
echo "$n events, $((bytes / n)) bytes each on average, $(nproc) cores"
timed "cat (copy, no parsing)" sh -c "cat '$dir/in.jsonl' > '$dir/out-cat.jsonl'"
timed "jq -c select(department=billing)" sh -c "jq -c 'select(.detail.department == \"billing\")' '$dir/in.jsonl' > '$dir/out-jq.jsonl'"
# The admin server and metrics are on by default; without them, the cost of measuring shows.
WEIR_ADMIN__ADDRESS=off timed "weir run, metrics off (admin.address = off)" \
  ./target/release/weir run --state-dir "$dir/state-off" "$dir/p.toml"
rm "$dir/out-weir.jsonl"
timed "weir run (pattern filter)" ./target/release/weir run --state-dir "$dir/state" "$dir/p.toml"
weir_out=$(wc -l < "$dir/out-weir.jsonl"); jq_out=$(wc -l < "$dir/out-jq.jsonl")
echo "delivered: weir $weir_out, jq $jq_out"
[ "$weir_out" = "$jq_out" ] || { echo "error: weir and jq disagree" >&2; exit 1; }
