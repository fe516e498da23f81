#!/usr/bin/env bash
# Builds weir and the example plugins, and runs the quickstart pipeline
# (file -> filter -> Wasm plugin (redact) -> file, no broker needed).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-plugins.sh
cargo build --release --locked -p weir
# Start the demo afresh each time: forget the previous run's checkpoint and output.
rm -rf var/state/quickstart var/out/quickstart.jsonl
./target/release/weir check pipelines/quickstart.toml
./target/release/weir run pipelines/quickstart.toml
echo
echo "== $(wc -l < var/out/quickstart.jsonl) events delivered to var/out/quickstart.jsonl; the first two:"
head -n 2 var/out/quickstart.jsonl
