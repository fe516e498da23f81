#!/usr/bin/env bash
# SQS -> pattern filter -> (Rust Wasm plugin redact) -> SQS, against a plain receive -> send ->
# delete loop with the same client library (aws-sdk-sqs), on the same local SQS server (moto),
# in one run. Each contender gets a fresh server loaded with the same events (moto slows down as
# its queues grow). Each rate runs from the first message reaching `out` to the last. moto is a
# Python server on the same two cores: it, not the clients, sets the pace, so this measures what
# each client asks of the server and how well it keeps calls under way, not AWS's speed.
# Usage: scripts/bench-sqs.sh [EVENTS] (default 20000 events of ~400 bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
source scripts/bench-common.sh

moto="${MOTO_SERVER:-${XDG_CACHE_HOME:-$HOME/.cache}/weir/moto/bin/moto_server}"
if [ ! -x "$moto" ]; then
  python3 -m venv "$(dirname "$(dirname "$moto")")"
  "$(dirname "$moto")/pip" install --quiet 'moto[server]==5.2.5'
fi
scripts/build-plugins.sh
cargo build --release --locked -q -p weir --bin weir --example sqs-bench
bench=$PWD/target/release/examples/sqs-bench
weir=$PWD/target/release/weir
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

"$weir" plugin test plugins/redact/redact.wasm --input /dev/null --state-dir "$root/state" \
  --config '{"fields":["email"]}' > /dev/null 2>&1 || true

# fresh NAME: a new server with queues in, out, dlq and $n events in `in`; sets $endpoint.
fresh() {
  local port
  port=$(free_port)
  endpoint=http://127.0.0.1:$port
  "$moto" -H 127.0.0.1 -p "$port" > "$root/$1-moto.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  wait_port "$port"
  { read -r q_in; read -r q_out; read -r q_dlq; } < <("$bench" create "$endpoint" in out dlq)
  "$bench" load "$endpoint" "$q_in" "$n"
}

until_out='"$bench" wait "$endpoint" "$q_out" "$n"' # how `run` knows a row is done

pipeline() { # NAME [plugin table]
  cat > "$root/$1.toml" <<TOML
[pipeline]
name = "$1"
[source]
type = "sqs"
queue_url = "$q_in"
endpoint_url = "$endpoint"
batch_size = 50
wait_time_s = 0                   # moto's long polls hang when several wait on one queue
[[filter]]
pattern = '{"data": {"detail-type": ["OrderCreated"], "detail": {"amount": [{"numeric": [">=", 0]}]}}}'
$2
[sink]
type = "sqs"
queue_url = "$q_out"
endpoint_url = "$endpoint"
[dlq]
type = "sqs"
queue_url = "$q_dlq"
endpoint_url = "$endpoint"
TOML
}

echo "$n events of ~400 bytes, $(nproc) cores, moto $("$(dirname "$moto")/pip" show moto 2>/dev/null | sed -n 's/^Version: //p'); a fresh server for each row"
fresh copy
run "plain copy (5 receive->send->delete loops)" "$until_out" -- "$bench" copy "$endpoint" "$q_in" "$q_out" 5
fresh weir
pipeline weir '[[plugin]]
path = "plugins/redact/redact.wasm"
config = { fields = ["email", "card"] }'
run "weir: filter -> redact.wasm -> sqs" "$until_out" -- "$weir" run --state-dir "$root/state" "$root/weir.toml"
fresh bare
pipeline bare ''
run "weir: filter -> sqs (no plugin)" "$until_out" -- "$weir" run --state-dir "$root/state" "$root/bare.toml"
