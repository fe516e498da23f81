#!/usr/bin/env bash
# A whole pipeline against a single-purpose native program doing exactly the same, side by side
# in one run: N EventBridge-style order events of ~420 bytes in a file (scripts/w1_events.py);
# keep `detail.department` in {billing, fulfillment} with `detail.amount` > 10; reshape each to
# 7 fields (`id`, `type` = `detail-type`, `customer`, `dept` upper-cased, `amount`, `email` =
# "***", `seq`); write JSON lines.
#   native             host/examples/w1-native.rs: serde_json Value, one core, no framework
#   weir + plugin      file -> filter -> Rust plugin (plugins/reshape) -> file
#   weir + template    file -> filter -> sink template (dept not upper-cased) -> file
#   weir, filter only  file -> filter -> file (no reshape)
#   weir + plugin, 4 lanes by customer
#   weir + the JavaScript and Python versions of the plugin (plugins/reshape-js, reshape-py), once
#   each after the rounds (they are several times slower; OTHER_LANGUAGES=0 skips them)
# Every output is checked against the native program's. Runs go in rounds (ROUNDS, default 3,
# after one uncounted round that also compiles the plugins into weir's cache), medians printed,
# with wall time, CPU and peak memory as ratios to the native program's. Needs GNU time.
# Usage: scripts/bench-w1.sh [EVENTS]   (default 1000000; NO_BUILD=1 skips the builds; BIN=PATH
# runs another weir binary, such as an earlier build to compare with)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
# The admin server on a free port, and a scratch directory removed on exit.
source scripts/bench-common.sh
dir=$root

if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --locked -q -p weir --bin weir --example w1-native
  scripts/build-plugins.sh
fi
python3 scripts/w1_events.py "$n" > "$dir/in.jsonl"

# pipeline NAME SINK_EXTRA [MIDDLE]: $dir/NAME.toml
pipeline() {
  cat > "$dir/$1.toml" <<TOML
[pipeline]
name = "$1"
[source]
type = "file"
path = "$dir/in.jsonl"
[[filter]]
pattern = '{"data": {"detail": {"department": ["billing", "fulfillment"], "amount": [{"numeric": [">", 10]}]}}}'
${3:-}
[sink]
type = "file"
path = "$dir/out-$1.jsonl"
$2
TOML
}
plugin="[[plugin]]
path = \"$PWD/plugins/reshape/reshape.wasm\""
pipeline plugin "" "$plugin"
pipeline template "template = '{\"id\": <\$.data.id>, \"type\": <\$.data.detail-type>, \"customer\": <\$.data.detail.customer>, \"dept\": <\$.data.detail.department>, \"amount\": <\$.data.detail.amount>, \"email\": \"***\", \"seq\": <\$.data.detail.seq>}'"
pipeline filter ""
pipeline js "" "[[plugin]]
path = \"$PWD/plugins/reshape-js/reshape.wasm\""
pipeline py "" "[[plugin]]
path = \"$PWD/plugins/reshape-py/reshape.wasm\""
pipeline lanes "" "$plugin
[ordering]
key = \"<\$.data.detail.customer>\"
lanes = 4"

# weir NAME: runs $dir/NAME.toml from the start (its checkpoint and output removed first; its
# compiled plugins kept, as a service keeps them in its state directory across restarts).
weir() {
  echo "sh -c 'rm -rf $dir/state-$1/$1 $dir/out-$1.jsonl && exec ${BIN:-target/release/weir} run --state-dir $dir/state-$1 $dir/$1.toml'"
}
echo "$n events, $(( $(stat -c %s "$dir/in.jsonl") / n )) bytes each on average, $(nproc) cores"
python3 scripts/bench_rounds.py "${ROUNDS:-3}" \
  "native program" "target/release/examples/w1-native $dir/in.jsonl $dir/out-native.jsonl" \
  "weir: filter -> Rust plugin -> file" "$(weir plugin)" \
  "weir: filter -> template -> file" "$(weir template)" \
  "weir: filter -> file (no reshape)" "$(weir filter)" \
  "weir: Rust plugin, 4 lanes by customer" "$(weir lanes)"
if [ "${OTHER_LANGUAGES:-1}" != 0 ]; then
  python3 scripts/bench_rounds.py 1 \
    "native program" "target/release/examples/w1-native $dir/in.jsonl $dir/out-native.jsonl" \
    "weir: filter -> JavaScript plugin -> file" "$(weir js)" \
    "weir: filter -> Python plugin -> file" "$(weir py)"
fi

# The outputs of the last round, against the native program's.
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
load = lambda name: [json.loads(l) for l in open(f"{d}/out-{name}.jsonl")]
native = load("native")
assert load("plugin") == native, "the plugin pipeline's output differs from the native program's"
import os
for lang in ("js", "py"):
    if os.path.exists(f"{d}/out-{lang}.jsonl"):
        assert load(lang) == native, f"the {lang} plugin pipeline's output differs"
lower = [dict(e, dept=e["dept"].lower()) for e in native]
assert load("template") == lower, "the template pipeline's output differs"
key = lambda e: e["seq"]
assert sorted(load("lanes"), key=key) == native, "the 4-lane pipeline's output differs"
assert [e["detail"]["seq"] for e in load("filter")] == [e["seq"] for e in native], "the filter differs"
print(f"outputs checked: {len(native)} events each, the same as the native program's")
PY
