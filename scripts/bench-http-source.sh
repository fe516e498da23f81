#!/usr/bin/env bash
# HTTP source -> file sink, against a plain hyper server (the library weir's listener is built
# on) that appends each request's body to a file and fsyncs it before answering 200, in one run,
# with the same load generator and events: CONC keep-alive connections posting ~400-byte order
# events, 1 and then 100 events per request. The plain server's rate is its answered events/s
# (an answer means the body is on disk); weir's is from the first request to the last event in
# its sink's file (an answer means the events are fsynced in its write-ahead log; the sink then
# writes them again).
# Usage: scripts/bench-http-source.sh [EVENTS] [CONC] (default 20000 events, 32 connections)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
conc=${2:-32}
source scripts/bench-common.sh

cargo build --release --locked -q -p weir --bin weir --example http-source-bench
bench=$PWD/target/release/examples/http-source-bench
weir=$PWD/target/release/weir

echo "$n events of ~400 bytes, $conc connections, $(nproc) cores, state and output in $root"
for per in 1 100; do
  port=$(free_port)
  "$bench" serve "$port" "$root/plain-$per.jsonl" > /dev/null 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  wait_port "$port"
  { read -r _; read -r plain; } < <("$bench" load "$port" "$n" "$conc" "$per")
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true

  port=$(free_port)
  cat > "$root/weir-$per.toml" <<TOML
[pipeline]
name = "bench-$per"
[source]
type = "http"
listen = "127.0.0.1:$port"
batch_size = 1000
[sink]
type = "file"
path = "$root/weir-$per.jsonl"
TOML
  "$weir" run --state-dir "$root/state" "$root/weir-$per.toml" > "$root/weir-$per.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  wait_port "$port"
  { read -r start; read -r ingest; } < <("$bench" load "$port" "$n" "$conc" "$per")
  e2e=$("$bench" wait "$root/weir-$per.jsonl" "$n" "$start")
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  printf '%3d event(s)/request: plain hyper+fsync %7d ev/s   weir http->file %7d ev/s (answered %7d ev/s)   ratio %.2f\n' \
    "$per" "$plain" "$e2e" "$ingest" "$(echo "$e2e / $plain" | bc -l)"
done
