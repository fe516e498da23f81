#!/usr/bin/env bash
# Kafka -> pattern filter -> Rust Wasm plugin (redact) -> Kafka, against a plain
# consume-and-produce copy of the same topic with the same client library (rdkafka), on the same
# broker (tansu, SQLite storage), in one run. Each contender gets a broker of its own, started
# afresh and loaded with the same events: tansu's SQLite store slows down as it grows, which
# would otherwise penalise whoever runs last. Each rate runs from the first record appearing in
# the output topic to the last, so joining the consumer group does not count.
# Usage: scripts/bench-kafka.sh [EVENTS] (default 200000 events of ~400 bytes, 4 partitions)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
source scripts/bench-common.sh

tansu="${TANSU:-${CARGO_HOME:-$HOME/.cargo}/bin/tansu}"
[ -x "$tansu" ] || cargo install tansu --version 0.6.0 --features dynostore,libsql --locked -j 2
scripts/build-plugins.sh
cargo build --release --locked -q -p weir --bin weir --example kafka-bench
bench=$PWD/target/release/examples/kafka-bench
weir=$PWD/target/release/weir

# Compile the plugin into the cache first, so that no run pays for it.
"$weir" plugin test plugins/redact/redact.wasm --input /dev/null --state-dir "$root/state" \
  --config '{"fields":["email"]}' > /dev/null 2>&1 || true

# fresh NAME: a new broker in $root/NAME with topics in, out, dlq and $n events in `in`;
# sets $dir and $brokers.
fresh() {
  dir=$root/$1
  mkdir -p "$dir"
  local port
  port=$(free_port)
  brokers=127.0.0.1:$port
  # tansu reads the storage URL's path as relative: run it in its directory.
  (cd "$dir" && exec "$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
    --storage-engine "sqlite://tansu.db" > tansu.log 2>&1) &
  server_pid=$!
  pids+=("$server_pid")
  wait_port "$port"
  for t in in out dlq; do
    "$tansu" topic create --broker "tcp://$brokers" --partitions 4 "$t" > /dev/null
  done
  "$bench" load "$brokers" in "$n"
}

until_out='"$bench" wait "$brokers" out "$n"' # how `run` knows a row is done

pipeline() { # NAME [plugin table]
  cat > "$dir/$1.toml" <<TOML
[pipeline]
name = "$1"
[source]
type = "kafka"
brokers = "$brokers"
topics = "in"
group = "bench-$1"
[[filter]]
pattern = '{"data": {"detail-type": ["OrderCreated"], "detail": {"amount": [{"numeric": [">=", 0]}]}}}'
$2
[sink]
type = "kafka"
brokers = "$brokers"
topic = "out"
# The plain copy writes no headers. tansu stores each header as an SQLite row of its own: with
# weir's default correlation-id header on every record it runs ~28x slower (see the README).
correlation_header = ""
[dlq]
type = "kafka"
brokers = "$brokers"
topic = "dlq"
TOML
}

echo "$n events of ~400 bytes, 4 partitions, $(nproc) cores; a fresh broker for each row"
fresh copy
run "plain copy (rdkafka consume -> produce)" "$until_out" -- "$bench" copy "$brokers" in out
fresh weir
pipeline weir '[[plugin]]
path = "plugins/redact/redact.wasm"
config = { fields = ["email", "card"] }'
run "weir: filter -> redact.wasm -> kafka" "$until_out" -- "$weir" run --state-dir "$root/state" "$dir/weir.toml"
fresh bare
pipeline bare ''
run "weir: filter -> kafka (no plugin)" "$until_out" -- "$weir" run --state-dir "$root/state" "$dir/bare.toml"
