#!/usr/bin/env bash
# RabbitMQ in and out, against plain clients of the same library (lapin), on the machine's
# broker (amqp://guest:guest@127.0.0.1:5672), in one run, on the same ~400-byte events:
#   (a) a plain consumer (manual acks, the same prefetch, acks after flushing) -> a JSON-lines
#       file, vs (b) weir: rabbitmq -> file; (a2) the plain consumer fsyncing the file before each
#       ack, as weir does before it acknowledges (the durable baseline);
#   (c) a plain publisher (persistent, mandatory, confirms awaited per batch of the same size)
#       from a file, vs (d) weir: file -> rabbitmq.
# Each rate runs from the first event's arrival to the last. The broker runs on the same cores.
# Usage: scripts/bench-rabbitmq.sh [EVENTS] (default 50000; ROUNDS=N rounds of every row, default
# 5; NO_BUILD=1 skips the build, BIN=PATH runs another build of weir, PREFETCH=N)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50000}
url=${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
prefetch=${PREFETCH:-1000}
batch=256
source scripts/bench-common.sh

[ -n "${NO_BUILD:-}" ] || cargo build --release --locked -q -p weir --bin weir --example rabbitmq-bench
bench=$PWD/target/release/examples/rabbitmq-bench
weir=${BIN:-$PWD/target/release/weir}  # BIN=PATH: another build of weir (a baseline)
q=weir-bench-$$
"$bench" declare "$url" "$q-a" "$q-b" "$q-c" "$q-d" "$q-e"
trap '"$bench" delete "$url" "$q-a" "$q-b" "$q-c" "$q-d" "$q-e"; cleanup' EXIT

rate() { sed -n 's/.*, \([0-9]*\) events\/s.*/\1/p' <<<"$1"; }

# timed LABEL WAIT -- COMMAND...: COMMAND in the background until WAIT prints the rate.
timed() {
  local label=$1 wait=$2; shift 3
  "$@" > "$root/run.log" 2>&1 &
  local pid=$!
  local line
  line=$(eval "$wait")
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  printf '%-44s %s\n' "$label" "$line" >&2
  rate "$line"
}

echo "$n events of ~400 bytes, $(nproc) cores, prefetch $prefetch, publish batch $batch"
rounds=${ROUNDS:-5}
# One round: fresh queues (declare purges them) and files, then the five rows; appends their
# rates to $root/rates.
one_round() {
  "$bench" declare "$url" "$q-a" "$q-b" "$q-c" "$q-d" "$q-e"
  rm -rf "$root/state" "$root"/*.jsonl
  "$bench" load "$url" "$q-a" "$n"
  "$bench" load "$url" "$q-b" "$n"
  "$bench" load "$url" "$q-e" "$n"

  a=$(timed "(a) plain lapin consumer -> file" '"$bench" wait-file "$root/a.jsonl" "$n"' -- \
    "$bench" consume "$url" "$q-a" "$n" "$prefetch" "$root/a.jsonl")
  a2=$(timed "(a2) plain consumer, fsync before each ack" '"$bench" wait-file "$root/a2.jsonl" "$n"' -- \
    "$bench" consume "$url" "$q-e" "$n" "$prefetch" "$root/a2.jsonl" sync)
  cat > "$root/b.toml" <<TOML
[pipeline]
name = "bench-rabbitmq-in"
[source]
type = "rabbitmq"
url = "$url"
queue = "$q-b"
prefetch = $prefetch
batch_size = $batch
[sink]
type = "file"
path = "$root/b.jsonl"
TOML
  b=$(timed "(b) weir: rabbitmq -> file" '"$bench" wait-file "$root/b.jsonl" "$n"' -- \
    "$weir" run --state-dir "$root/state" "$root/b.toml")

  # The sink's input: the events weir just wrote.
  c=$(timed "(c) plain lapin publisher (confirms)" '"$bench" wait-queue "$url" "$q-c" "$n"' -- \
    "$bench" publish "$url" "" "$q-c" "$root/b.jsonl" "$batch")
  cat > "$root/d.toml" <<TOML
[pipeline]
name = "bench-rabbitmq-out"
[source]
type = "file"
path = "$root/b.jsonl"
batch_size = $batch
[sink]
type = "rabbitmq"
url = "$url"
exchange = ""
routing_key = "$q-d"
TOML
  d=$(timed "(d) weir: file -> rabbitmq" '"$bench" wait-queue "$url" "$q-d" "$n"' -- \
    "$weir" run --state-dir "$root/state" "$root/d.toml")
  echo "$a $a2 $b $c $d" >> "$root/rates"
}
for ((r = 1; r <= rounds; r++)); do
  echo "round $r of $rounds" >&2
  one_round
done

# Medians over the rounds, with their range (see the script).
scripts/bench-medians.py "$root/rates"
