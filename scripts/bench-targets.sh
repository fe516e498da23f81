#!/usr/bin/env bash
# Several targets (#21), side by side in the same run, on the same input:
#   fan-out  one file target ([sink]) vs three file targets without rules (every event to each)
#   routing  one target with one rule vs 10 targets with 100 rules each (one rule matching, the
#            999 others matching nothing): the cost of matching 1,000 rules per event; and the
#            same 1,000 rules as 1,000 targets of a rule each (what a thousand sinks cost)
# Usage: scripts/bench-targets.sh [EVENTS]   (default 1000000 events of ~400 bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
# weir's admin server on a free port: a weir service on this machine keeps its 9464.
export WEIR_ADMIN__ADDRESS=${WEIR_ADMIN__ADDRESS:-127.0.0.1:0}
n=${1:-1000000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

cargo build --release --locked -q -p weir
python3 scripts/orders.py "$n" > "$dir/in.jsonl"
head() { # NAME
  printf '[pipeline]\nname = "%s"\n[source]\ntype = "file"\npath = "%s/in.jsonl"\nbatch_size = 1024\n' "$1" "$dir"
}
{ head one; printf '[sink]\ntype = "file"\npath = "%s/one.jsonl"\n' "$dir"; } > "$dir/one.toml"
{ head three
  for t in a b c; do printf '[[target]]\nname = "%s"\ntype = "file"\npath = "%s/three-%s.jsonl"\n' "$t" "$dir" "$t"; done
} > "$dir/three.toml"
rule='{"data": {"detail": {"department": ["%s"]}}}'
{ head rule1; printf "[[target]]\nname = \"billing\"\nwhen = '$rule'\ntype = \"file\"\npath = \"%s/rule1.jsonl\"\n" billing "$dir"; } > "$dir/rule1.toml"
{ head rules10x100
  for t in $(seq 0 9); do
    printf '[[target]]\nname = "t%d"\nwhen = [' "$t"
    for i in $(seq 0 99); do
      v="dept-$t-$i"; [ "$t$i" = 00 ] && v=billing
      printf "'$rule', " "$v"
    done
    printf ']\ntype = "file"\npath = "%s/r10x100-%d.jsonl"\n' "$dir" "$t"
  done
} > "$dir/rules10x100.toml"
{ head rules1000
  printf "[[target]]\nname = \"billing\"\nwhen = '$rule'\ntype = \"file\"\npath = \"%s/rules1000.jsonl\"\n" billing "$dir"
  for i in $(seq 1 999); do
    printf "[[target]]\nname = \"t%d\"\nwhen = '$rule'\ntype = \"file\"\npath = \"%s/none-%d.jsonl\"\n" "$i" "dept-$i" "$dir" "$i"
  done
} > "$dir/rules1000.toml"

. scripts/timed.sh
echo "$n events, $(( $(stat -c %s "$dir/in.jsonl") / n )) bytes each on average, $(nproc) cores"
for p in one three rule1 rules10x100 rules1000; do ./target/release/weir check "$dir/$p.toml" > /dev/null; done
timed "1 file target ([sink])" ./target/release/weir run --state-dir "$dir/s1" "$dir/one.toml"
timed "3 file targets, every event to each" ./target/release/weir run --state-dir "$dir/s3" "$dir/three.toml"
timed "1 target, 1 rule" ./target/release/weir run --state-dir "$dir/s4" "$dir/rule1.toml"
timed "10 targets, 1,000 rules (100 each)" ./target/release/weir run --state-dir "$dir/s6" "$dir/rules10x100.toml"
timed "1,000 targets, 1,000 rules" ./target/release/weir run --state-dir "$dir/s5" "$dir/rules1000.toml"
for f in one three-a three-b three-c; do
  [ "$(wc -l < "$dir/$f.jsonl")" = "$n" ] || { echo "error: $f.jsonl lacks events" >&2; exit 1; }
done
for f in r10x100-0 rules1000; do
  [ "$(wc -l < "$dir/rule1.jsonl")" = "$(wc -l < "$dir/$f.jsonl")" ] || { echo "error: the rule rows disagree ($f)" >&2; exit 1; }
done
echo "routed to billing: $(wc -l < "$dir/rule1.jsonl") of $n"
