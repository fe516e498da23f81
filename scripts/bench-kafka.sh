#!/usr/bin/env bash
# Kafka -> pattern filter -> Rust Wasm plugin (redact) -> Kafka, against a plain
# consume-and-produce copy of the same topic with the same client library (rdkafka), on the same
# broker (tansu, SQLite storage), in one run. Each rate runs from the first record appearing in
# the output topic to the last, so joining the consumer group does not count.
# Usage: scripts/bench-kafka.sh [EVENTS] (default 200000 events of ~400 bytes, 4 partitions)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
dir=$(mktemp -d)
pids=()
cleanup() { # the clients first, the broker last
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  [ -n "${KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT

tansu="${TANSU:-${CARGO_HOME:-$HOME/.cargo}/bin/tansu}"
[ -x "$tansu" ] || cargo install tansu --version 0.6.0 --features dynostore,libsql --locked -j 2
scripts/build-plugins.sh
cargo build --release --locked -q -p weir --bin weir --example kafka-bench
bench=./target/release/examples/kafka-bench
weir=./target/release/weir

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
brokers=127.0.0.1:$port
# tansu reads the storage URL's path as relative: run it in its directory.
(cd "$dir" && exec "$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
  --storage-engine "sqlite://tansu.db" > tansu.log 2>&1) &
pids+=($!)
until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; do sleep 0.1; done
for t in in copy out dlq; do
  "$tansu" topic create --broker "tcp://$brokers" --partitions 4 "$t" > /dev/null
done
echo "loading $n events into topic in ($(nproc) cores)"
"$bench" load "$brokers" in "$n"

cat > "$dir/bench.toml" <<TOML
[pipeline]
name = "bench"
[source]
type = "kafka"
brokers = "$brokers"
topics = "in"
group = "bench-weir"
[[filter]]
pattern = '{"data": {"detail-type": ["OrderCreated"], "detail": {"amount": [{"numeric": [">=", 0]}]}}}'
[[plugin]]
path = "plugins/redact/redact.wasm"
config = { fields = ["email", "card"] }
[sink]
type = "kafka"
brokers = "$brokers"
topic = "out"
[dlq]
type = "kafka"
brokers = "$brokers"
topic = "dlq"
TOML
# Compile the plugin into the cache first, so that the run does not pay for it.
"$weir" plugin test plugins/redact/redact.wasm --input /dev/null --state-dir "$dir/state" \
  --config '{"fields":["email"]}' > /dev/null 2>&1 || true

run() { # label topic command...
  local label=$1 topic=$2; shift 2
  "$@" > "$dir/$topic.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  printf '%-46s ' "$label"
  "$bench" wait "$brokers" "$topic" "$n"
  kill "$pid"
}
run "plain copy (rdkafka consume -> produce)" copy "$bench" copy "$brokers" in copy
run "weir (filter -> redact.wasm -> kafka)" out "$weir" run --state-dir "$dir/state" "$dir/bench.toml"
