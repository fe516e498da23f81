#!/usr/bin/env bash
# NATS JetStream in and out, weir against a plain client of the same library (async-nats) doing
# the same work, on the machine's nats-server (127.0.0.1:4222, -js), in one run:
#   (a) plain pull consumer (same batch size, each message acknowledged) -> JSON lines file
#   (b) weir: nats source -> file
#   (c) plain JetStream publisher (Nats-Msg-Id, 1,024 publishes under way, then their acks)
#   (d) weir: file -> nats sink (batches of 1,024 over 4 lanes: ~1,024 under way)
# Each row gets fresh streams loaded with the same events; a row's rate runs from the first
# output to the last (a consumer's creation and weir's start do not count).
# Usage: scripts/bench-nats.sh [EVENTS] (default 200000 events of ~400 bytes; NO_BUILD=1 runs
# the release binaries as they are; BIN=PATH runs another build of weir, a baseline)
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

ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}x')" "$1" "$2"; }
rate() { sed -n 's/.*, \([0-9]*\) messages\/s.*/\1/p' <<< "$1"; }

echo "$n events of ~400 bytes, $(nproc) cores, nats-server $(nats-server --version 2>/dev/null || echo '(version unknown)')"

"$bench" setup "$name"; "$bench" load "$name" "$n"
a=$("$bench" consume "$name" "$n" "$root/plain.jsonl" 256)
printf '%-48s %s\n' "(a) plain async-nats pull consumer -> file" "$a"

"$bench" setup "$name"; "$bench" load "$name" "$n"
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
"$weir" run --state-dir "$root/state" "$root/in.toml" > "$root/in.log" 2>&1 &
pid=$!; pids+=("$pid")
b=$("$bench" wait-file "$root/weir.jsonl" "$n")
kill "$pid" 2>/dev/null || true; wait "$pid" || true
printf '%-48s %s\n' "(b) weir: nats -> file" "$b"

"$bench" file "$n" "$root/events.jsonl"
"$bench" setup "$name"
c=$("$bench" publish "$name" "$root/events.jsonl" "$n" 1024)
printf '%-48s %s\n' "(c) plain async-nats publisher, acks awaited" "$c"

"$bench" setup "$name"
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
"$weir" run --state-dir "$root/state" "$root/out.toml" > "$root/out.log" 2>&1 &
pid=$!; pids+=("$pid")
d=$("$bench" wait-stream "$name" "$n")
kill "$pid" 2>/dev/null || true; wait "$pid" || true
printf '%-48s %s\n' "(d) weir: file -> nats" "$d"

echo "weir / plain: source $(ratio "$(rate "$b")" "$(rate "$a")"), sink $(ratio "$(rate "$d")" "$(rate "$c")")"
