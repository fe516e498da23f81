#!/usr/bin/env bash
# Parallel lanes: a file -> Rust Wasm plugin (redact) -> file pipeline, the same events through
#   1 lane   no ordering key: one sequential stream (the baseline)
#   N lanes  [ordering] key = customerId: each customer's events in order, customers in parallel
# in the same run, checking that both deliver every event and that the keyed run kept each
# customer's order. Usage: scripts/bench-lanes.sh [EVENTS] (default 300000 events of ~400 bytes);
# REDACT=PATH runs another build of the plugin (e.g. one built with --features system-allocator);
# BIN=PATH another build of weir (a baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
# weir's admin server on a free port: a weir service on this machine keeps its 9464.
export WEIR_ADMIN__ADDRESS=${WEIR_ADMIN__ADDRESS:-127.0.0.1:0}
n=${1:-300000}
redact=$(realpath "${REDACT:-plugins/redact/redact.wasm}")
dir=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT

scripts/build-plugins.sh
cargo build --release --locked -q -p weir
weir=${BIN:-./target/release/weir}
python3 - "$n" > "$dir/in.jsonl" <<'PY'
import json, sys, random
random.seed(1)
seq = {}
for i in range(int(sys.argv[1])):
    c = f"C{random.randint(0, 4999):05d}"
    seq[c] = seq.get(c, -1) + 1
    print(json.dumps({"version": "0", "id": f"ev-{i:012d}", "detail-type": "OrderCreated", "source": "shop.orders",
        "time": "2026-11-22T10:00:00Z", "region": "eu-west-1",
        "detail": {"orderId": f"O{i}", "customerId": c, "seq": seq[c],
                   "customer": {"email": f"{c}@example.org", "phone": "+33 6 12 34 56 78"},
                   "amount": round(random.uniform(1, 500), 2), "currency": "EUR",
                   "items": [{"sku": f"SKU-{random.randint(1, 999):03d}", "qty": random.randint(1, 5)} for _ in range(2)]}},
        separators=(",", ":")))
PY
bytes=$(stat -c %s "$dir/in.jsonl")
pipeline() { # name lanes ordering-table
  cat > "$dir/$1.toml" <<TOML
[pipeline]
name = "$1"
[source]
type = "file"
path = "$dir/in.jsonl"
batch_size = 1024
[[plugin]]
path = "$redact"
config = { fields = ["email", "phone"] }
$3
[sink]
type = "file"
path = "$dir/out-$1.jsonl"
TOML
}
lanes=$((2 * $(nproc)))
pipeline one "" ""
pipeline many "" "[ordering]
key = \"<\$.data.detail.customerId>\"
lanes = $lanes"

# Compile the plugin into the cache first, so that neither run pays for it.
"$weir" plugin test "$redact" --input /dev/null --state-dir "$dir/state" \
  --config '{"fields":["email"]}' > /dev/null 2>&1 || true

. scripts/timed.sh
echo "$n events, $((bytes / n)) bytes each on average, $(nproc) cores"
timed "weir, 1 lane (no key)" "$weir" run --state-dir "$dir/state" "$dir/one.toml"
timed "weir, $lanes lanes (key = customerId)" "$weir" run --state-dir "$dir/state" "$dir/many.toml"
python3 - "$dir/out-one.jsonl" "$dir/out-many.jsonl" "$n" <<'PY'
import json, sys
one, many, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for path in (one, many):
    last = {}
    count = 0
    with open(path) as f:
        for line in f:
            d = json.loads(line)["detail"]
            assert d["customer"]["email"] == "***", "redacted"
            c, s = d["customerId"], d["seq"]
            assert last.get(c, -1) + 1 == s, f"{path}: customer {c} out of order ({last.get(c)} then {s})"
            last[c] = s
            count += 1
    assert count == n, f"{path}: {count} of {n} delivered"
print(f"both delivered all {n} events; every customer's events in order")
PY
