#!/usr/bin/env bash
# NATS JetStream in and out, weir against a plain client of the same library (async-nats) doing
# the same work, on the machine's nats-server (127.0.0.1:4222, -js), in one run:
#   (a) plain pull consumer (same batch size, each message acknowledged) -> JSON lines file
#   (a2) the same, acknowledging only once the file is fsynced, as weir does at its checkpoints
#   (b) weir: nats source -> file
#   (c) plain JetStream publisher (Nats-Msg-Id, 1,024 publishes under way, then their acks)
#   (d) weir: file -> nats sink (batches of 1,024 over 4 lanes: ~1,024 under way)
# Each row gets fresh streams loaded with the same events; a row's rate runs from the first
# output to the last (a consumer's creation and weir's start do not count).
# Usage: scripts/bench-nats.sh [EVENTS] (default 200000 events of ~400 bytes; ROUNDS=N rounds of
# every row, default 5, with medians; NO_BUILD=1 runs the release binaries as they are;
# BIN=PATH runs another build of weir, a baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
source scripts/bench-common.sh

# PROFILE=dev: a quick check of the script with the debug build (its numbers mean nothing).
if [ -n "${NO_BUILD:-}" ]; then dir=release
elif [ "${PROFILE:-release}" = dev ]; then
  cargo build --locked -q -p weir --bin weir --example nats-bench; dir=debug
else
  cargo build --release --locked -q -p weir --bin weir --example nats-bench; dir=release
fi
bench=$PWD/target/$dir/examples/nats-bench
weir=${BIN:-$PWD/target/$dir/weir}  # BIN=PATH: another build of weir (a baseline)
name=weirbench$$
trap '"$bench" teardown "$name" || true; cleanup' EXIT

rate() { sed -n 's/.*, \([0-9]*\) messages\/s.*/\1/p' <<< "$1"; }

echo "$n events of ~400 bytes, $(nproc) cores, nats-server $(nats-server --version 2>/dev/null || echo '(version unknown)')"
rounds=${ROUNDS:-5}

# run_weir WAIT TOML: weir on the pipeline until WAIT (which prints the rate) returns.
run_weir() {
  "$weir" run --state-dir "$root/state" "$2" > "$root/weir.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  eval "$1"
  kill "$pid" 2>/dev/null || true; wait "$pid" || true
}

cat > "$root/in.toml" <<TOML
[pipeline]
name = "bench-nats-in"
[source]
type = "nats"
servers = "127.0.0.1:4222"
stream = "${name}_in"
consumer = "weir"
batch_size = 256
[sink]
type = "file"
path = "$root/weir.jsonl"
TOML
cat > "$root/out.toml" <<TOML
[pipeline]
name = "bench-nats-out"
[source]
type = "file"
path = "$root/events.jsonl"
batch_size = 1024                 # 4 lanes of ~256: 1,024 publishes under way, as in (c)
[ordering]
key = "<\$.data.detail.customerId>"
lanes = 4
[sink]
type = "nats"
servers = "127.0.0.1:4222"
subject = "${name}.out.<\$.data.detail.customerId>"
correlation_header = ""
TOML
"$bench" file "$n" "$root/events.jsonl"

# One round: fresh streams and files for each row; appends the rows' rates to $root/rates.
one_round() {
  rm -rf "$root/state" "$root"/plain*.jsonl "$root/weir.jsonl"
  "$bench" setup "$name"; "$bench" load "$name" "$n"
  a=$("$bench" consume "$name" "$n" "$root/plain.jsonl" 256)
  printf '%-48s %s\n' "(a) plain async-nats pull consumer -> file" "$a" >&2

  "$bench" setup "$name"; "$bench" load "$name" "$n"
  a2=$("$bench" consume "$name" "$n" "$root/plain2.jsonl" 256 sync)
  printf '%-48s %s\n' "(a2) plain consumer, fsync before its acks" "$a2" >&2

  "$bench" setup "$name"; "$bench" load "$name" "$n"
  b=$(run_weir '"$bench" wait-file "$root/weir.jsonl" "$n"' "$root/in.toml")
  printf '%-48s %s\n' "(b) weir: nats -> file" "$b" >&2

  "$bench" setup "$name"
  c=$("$bench" publish "$name" "$root/events.jsonl" "$n" 1024)
  printf '%-48s %s\n' "(c) plain async-nats publisher, acks awaited" "$c" >&2

  "$bench" setup "$name"
  rm -rf "$root/state"
  d=$(run_weir '"$bench" wait-stream "$name" "$n"' "$root/out.toml")
  printf '%-48s %s\n' "(d) weir: file -> nats" "$d" >&2
  echo "$(rate "$a") $(rate "$a2") $(rate "$b") $(rate "$c") $(rate "$d")" >> "$root/rates"
}
for ((r = 1; r <= rounds; r++)); do
  echo "round $r of $rounds" >&2
  one_round
done

# Medians over the rounds, with their range (see the script).
scripts/bench-medians.py "$root/rates"
