#!/usr/bin/env bash
# The enrichment pipelines of host/benches/enrich.rs on many events, whole runs of two weir
# builds in turn (A B A B ...), each timed by /usr/bin/time: wall seconds, CPU seconds, peak KiB.
# For before/after comparisons of the plugin path (docs/performance.md, "Enrichment, third pass").
#   scripts/bench-enrich-ab.sh BIN_A BIN_B [EVENTS] [PAIRS] [PIPELINES]
#   PIPELINES: any of none alone redis (default all three); default 1000000 events, 5 pairs.
#   PLUGIN_A=... PLUGIN_B=...: each side's enrich-rs.wasm (default: the checkout's for both).
# Needs the machine's Redis (1,000 customers are written under a prefix of this run's own, and
# removed after) and plugins/enrich-rs/enrich-rs.wasm (scripts/build-plugins.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
a=$(realpath "$1"); b=$(realpath "$2"); n=${3:-1000000}; pairs=${4:-5}; which=${5:-none alone redis}
plugin_a=$(realpath "${PLUGIN_A:-plugins/enrich-rs/enrich-rs.wasm}")
plugin_b=$(realpath "${PLUGIN_B:-plugins/enrich-rs/enrich-rs.wasm}")
dir=$(mktemp -d); prefix="weir-bench-ab:$$:"
trap 'rm -rf "$dir"; redis-cli --scan --pattern "${prefix}*" | xargs -r redis-cli del >/dev/null' EXIT
python3 - "$dir/in.jsonl" "$n" <<'PY'
import sys
cur = ["USD", "GBP", "JPY", "CHF"]
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write('{"seq":%d,"k":"k%d","customer":"c%d","currency":"%s","amount":%d.25}\n'
                % (i, i % 1000, i % 1000, cur[i % 4], i % 500))
PY
for k in $(seq 0 999); do echo "HSET ${prefix}c$k tier tier$((k % 5)) region eu"; done | redis-cli >/dev/null
for side in a b; do
for name in $which; do
  plugin=$plugin_a; [ "$side" = b ] && plugin=$plugin_b
  case $name in
    none) parts="" ;;
    alone) parts="[[plugin]]
path = \"$plugin\"
config = {}" ;;
    redis) parts="[[table]]
name = \"customers\"
type = \"redis\"
url = \"redis://127.0.0.1:6379/0\"
key_prefix = \"$prefix\"
command = \"hgetall\"
cache_ttl_s = 60
[[plugin]]
path = \"$plugin\"
tables = [\"customers\"]
timeout_ms = 10000
io_budget_ms = 60000
config = { table = \"customers\" }" ;;
    *) echo "unknown pipeline $name (none, alone, redis)" >&2; exit 2 ;;
  esac
  printf '[pipeline]\nname = "%s"\n[source]\ntype = "file"\npath = "%s"\nbatch_size = 1024\n[ordering]\nkey = "<$.data.k>"\nlanes = 8\n%s\n[sink]\ntype = "file"\npath = "%s"\n[dlq]\ntype = "file"\npath = "%s"\n' \
    "$name" "$dir/in.jsonl" "$parts" "$dir/$name-out.jsonl" "$dir/$name-dlq.jsonl" > "$dir/$name-$side.toml"
done
done
run() { # BIN NAME SIDE -> "wall cpu peak_kib"
  rm -rf "$dir/state/$2" "$dir/$2-out.jsonl"
  WEIR_ADMIN__ADDRESS=127.0.0.1:0 /usr/bin/time -f "%e %U %S %M" -o "$dir/time" \
    "$1" run "$dir/$2-$3.toml" --state-dir "$dir/state" >/dev/null 2>"$dir/$2.log"
  [ "$(wc -l < "$dir/$2-out.jsonl")" -eq "$n" ] || { echo "$2: not every event delivered" >&2; exit 1; }
  awk '{ printf "%s %.2f %s", $1, $2 + $3, $4 }' "$dir/time"
}
for name in $which; do
  run "$a" "$name" a >/dev/null; run "$b" "$name" b >/dev/null   # warm-up: compiles the plugins
  for p in $(seq "$pairs"); do
    echo "$name pair $p  A: $(run "$a" "$name" a)  B: $(run "$b" "$name" b)   (wall s, cpu s, peak KiB)"
  done
done
