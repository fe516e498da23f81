#!/bin/sh
# Builds %NAME%.wasm, a component weir loads. Needs Rust with the wasm32-wasip2 target
# (`rustup target add wasm32-wasip2`). Then try it on the sample events:
#   weir plugin test %NAME%.wasm --input events.jsonl --config config.json
set -eu
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2 "$@"
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/%CRATE%.wasm" %NAME%.wasm
echo "built %NAME%.wasm"
