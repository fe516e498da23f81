#!/bin/sh
# Builds %NAME%.wasm, a component weir loads, with componentize-py (from PyPI:
# `pip install componentize-py==0.25.1`), found on PATH or named by $COMPONENTIZE_PY. Then try
# it on the sample events:
#   weir plugin test %NAME%.wasm --input events.jsonl --config config.json
set -eu
cd "$(dirname "$0")"
"${COMPONENTIZE_PY:-componentize-py}" -d wit -w transform componentize app -o %NAME%.wasm.tmp
mv %NAME%.wasm.tmp %NAME%.wasm
echo "built %NAME%.wasm"
