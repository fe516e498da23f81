# What the service benchmarks (bench-kafka.sh, bench-sqs.sh) share; sourced, not run.
# $root: a scratch directory removed on exit (kept with KEEP=1); `pids`: background processes,
# stopped on exit in reverse order (clients before the servers they talk to).
# weir's admin server on a free port: a weir service on this machine keeps its 9464.
export WEIR_ADMIN__ADDRESS=${WEIR_ADMIN__ADDRESS:-127.0.0.1:0}
root=$(mktemp -d)
pids=()
cleanup() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  [ -n "${KEEP:-}" ] || rm -rf "$root"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # PORT: until something accepts connections on it
  until python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null; do sleep 0.1; done
}

# run LABEL WAIT_COMMAND -- COMMAND...: runs COMMAND in the background until WAIT_COMMAND (which
# prints the rate) returns, then stops it and the server ($server_pid).
run() {
  local label=$1 wait=$2; shift 3
  "$@" > "$root/run.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  printf '%-44s ' "$label"
  eval "$wait"
  kill "$pid"; wait "$pid" || true
  kill "$server_pid"; wait "$server_pid" || true
}
