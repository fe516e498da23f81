#!/bin/sh
# Builds %NAME%.wasm, a component weir loads, with componentize-js (npm; installed into
# node_modules on the first build). Then try it on the sample events:
#   weir plugin test %NAME%.wasm --input events.jsonl --config config.json
set -eu
cd "$(dirname "$0")"
[ -d node_modules ] || npm install --no-audit --no-fund --loglevel=error
node build.mjs
echo "built %NAME%.wasm"
