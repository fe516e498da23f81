#!/usr/bin/env bash
# Builds every plugin the examples and tests use, installing the toolchains on first use.
# Idempotent and quick when nothing changed: scripts/test.sh runs it before every test run, so each
# step below first checks whether its inputs changed since it last succeeded.
# Outputs: plugins/<name>/<name>.wasm for the Rust examples (and plugins/fixtures/{faults,packed}/*.wasm
# for the tests), plugins/enrich-js/enrich.wasm, plugins/enrich-api-js/enrich-api.wasm and
# plugins/reshape-js/reshape.wasm (JavaScript), plugins/classify-py/classify.wasm,
# plugins/enrich-py/enrich.wasm and plugins/reshape-py/reshape.wasm (Python).
set -euo pipefail
cd "$(dirname "$0")/.."

# Rust guests: the wasm32-wasip2 target emits components directly (no wasm-tools step).
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
# Their own workspace and target dir: they never share a build lock or a feature set with the host.
# cargo does its own change detection, so this is a no-op (under a second) when nothing changed.
(cd plugins && cargo build --release --locked --target wasm32-wasip2 -j 2 --target-dir ../var/plugin-target -q)
out=var/plugin-target/wasm32-wasip2/release
install_if_changed() { cmp -s "$1" "$2" 2>/dev/null || cp "$1" "$2"; }
install_if_changed "$out/redact.wasm" plugins/redact/redact.wasm
install_if_changed "$out/split_order.wasm" plugins/split-order/split-order.wasm
install_if_changed "$out/enrich_rs.wasm" plugins/enrich-rs/enrich-rs.wasm
install_if_changed "$out/reshape.wasm" plugins/reshape/reshape.wasm
install_if_changed "$out/faults.wasm" plugins/fixtures/faults/faults.wasm
install_if_changed "$out/packed.wasm" plugins/fixtures/packed/packed.wasm

# JavaScript and Python guests take seconds to componentize (they embed a whole interpreter), and
# npm/pip would hit the network, so each step is guarded by a stamp under var/stamps holding the
# digest of its inputs' contents (not mtimes: a git checkout or a fresh clone touches every file).
# The stamp is written only after the step succeeded, so a failed or interrupted step reruns.
stamps=var/stamps
mkdir -p "$stamps"
# The digest of the named files' names and contents, plus any extra words (tool versions).
digest() {
  local files=() extra=()
  for a in "$@"; do if [ -f "$a" ]; then files+=("$a"); else extra+=("$a"); fi; done
  { sha256sum "${files[@]}"; printf '%s\n' "${extra[@]}"; } | sha256sum | cut -d' ' -f1
}
# True if stamp $1 records digest $2 and every remaining argument (the outputs) exists.
fresh() {
  local stamp=$stamps/$1 want=$2; shift 2
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] || return 1
  for f in "$@"; do [ -f "$f" ] || return 1; done
}
need() { command -v "$1" >/dev/null || { echo "error: $1 is required to build $2" >&2; exit 1; }; }

# JavaScript: componentize-js (npm, pinned by each plugin's package-lock.json), called as a
# library from the plugin's build.mjs because the `jco componentize` CLI is broken for it.
# build_js DIR SOURCE OUTPUT: DIR/SOURCE (with DIR/build.mjs) -> DIR/OUTPUT.
build_js() {
  local js=$1 source=$2 output=$3 name
  name=$(basename "$js")
  need node "$js"
  need npm "$js"
  # `npm ci` wipes and reinstalls node_modules (about 20 s), so only when it is missing or was
  # installed from another lockfile. npm ci also checks that the lockfile matches package.json.
  local deps src
  deps=$(digest "$js/package.json" "$js/package-lock.json" "node $(node --version)")
  if [ ! -d "$js/node_modules" ] || ! fresh "$name.npm" "$deps"; then
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$deps" > "$stamps/$name.npm"
  fi
  src=$(digest "$js/$source" "$js/build.mjs" wit/*.wit "$deps")
  if ! fresh "$name.build" "$src" "$js/$output"; then
    echo "building $js/$output (componentize-js, ~5 s)" >&2
    (cd "$js" && node build.mjs)
    echo "$src" > "$stamps/$name.build"
  fi
}
build_js plugins/enrich-js enrich.js enrich.wasm
build_js plugins/enrich-api-js enrich-api.js enrich-api.wasm
build_js plugins/reshape-js reshape.js reshape.wasm

# Python: componentize-py from PyPI, in a venv of its own under var/ so that the machine's Python
# is left alone; pip runs only when that venv lacks the pinned version.
componentize_py_version=0.25.1
venv=var/py-venv
need python3 "plugins/*-py"
if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $componentize_py_version" ]; then
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$componentize_py_version"
fi
# build_py DIR OUTPUT: the module app.py of DIR -> DIR/OUTPUT.
build_py() {
  local py=$1 output=$2 name src
  name=$(basename "$py")
  src=$(digest "$py"/*.py wit/*.wit "componentize-py $componentize_py_version")
  if ! fresh "$name.build" "$src" "$py/$output"; then
    echo "building $py/$output (componentize-py, ~6 s)" >&2
    # It generates the bindings (module wit_world) itself, in memory: nothing to keep in the tree.
    # (Its embedded CPython leaves a __pycache__ beside app.py; .gitignore ignores it.) Write to a
    # temporary file so that an interrupted build never leaves a truncated output behind.
    (cd "$py" && "../../$venv/bin/componentize-py" -d ../../wit -w transform \
      componentize app -o "$output.tmp" >/dev/null)
    mv "$py/$output.tmp" "$py/$output"
    echo "$src" > "$stamps/$name.build"
  fi
}
build_py plugins/classify-py classify.wasm
build_py plugins/enrich-py enrich.wasm
build_py plugins/reshape-py reshape.wasm
