#!/usr/bin/env bash
# The whole test suite, on a fresh machine or an old one: installs what is missing, starts the
# services the tests need, and runs every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests read the EventBridge conformance corpus from ../shared/conformance.
if [ ! -d ../shared/conformance ]; then
  echo "error: ../shared/conformance is missing (the shared folder must sit beside this repository)" >&2
  exit 1
fi

# The plugins the tests run (Rust, JavaScript, Python), with their toolchains on first use.
scripts/build-plugins.sh

# -j 2: the machine has two cores; more parallel rustc processes only add memory pressure.
cargo test --workspace --locked -j 2
