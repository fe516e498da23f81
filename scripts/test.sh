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

# The shared services the tests talk to (DESIGN.md "Real services"): Redis, PostgreSQL, RabbitMQ
# and NATS run on the project's machines, started before each session; the tests never start or
# stop them. Say
# which one is missing and how to start it, rather than letting dozens of tests time out.
service_missing=0
answers() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}
if command -v redis-cli >/dev/null 2>&1; then
  redis_ok() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }
else
  redis_ok() { answers 127.0.0.1 6379; }
fi
if ! redis_ok; then
  echo "error: Redis does not answer on 127.0.0.1:6379 (the lookup-table tests need it)." >&2
  echo "  start it: redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes" >&2
  echo "  (or: sudo systemctl start redis-server)" >&2
  service_missing=1
fi
if command -v pg_isready >/dev/null 2>&1; then
  postgres_ok() { pg_isready -q -h 127.0.0.1 -p 5432 -U postgres -d test; }
else
  postgres_ok() { answers 127.0.0.1 5432; }
fi
if ! postgres_ok; then
  echo "error: PostgreSQL does not answer on 127.0.0.1:5432 (the lookup-table tests need it:" >&2
  echo "  user postgres, trust auth, database test)." >&2
  echo "  start it: sudo systemctl start postgresql   (or: pg_ctlcluster <version> main start)" >&2
  echo "  then, once: createdb -h 127.0.0.1 -U postgres test" >&2
  service_missing=1
fi
# RabbitMQ: the AMQP port answers (the RabbitMQ source and sink tests create and remove queues
# and exchanges of their own under the default vhost, as guest/guest).
if ! answers 127.0.0.1 5672; then
  echo "error: RabbitMQ does not answer on 127.0.0.1:5672 (the RabbitMQ tests need it, guest/guest)." >&2
  echo "  start it: sudo systemctl start rabbitmq-server   (or: rabbitmq-server -detached)" >&2
  service_missing=1
fi
# NATS with JetStream: the server's INFO line, which it sends on connect, says whether
# JetStream is on (a server started without -js answers, but every stream request fails).
nats_info() {
  timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222 && IFS= read -r line <&3 && printf "%s" "$line"' 2>/dev/null
}
case "$(nats_info)" in
  *'"jetstream":true'*) ;;
  INFO*)
    echo "error: NATS on 127.0.0.1:4222 runs without JetStream (the NATS tests need streams)." >&2
    echo "  restart it with -js: nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server" >&2
    service_missing=1 ;;
  *)
    echo "error: NATS does not answer on 127.0.0.1:4222 (the NATS JetStream tests need it)." >&2
    echo "  start it: sudo systemctl start nats-server   (or: nats-server -a 127.0.0.1 -p 4222 -js -D &)" >&2
    service_missing=1 ;;
esac
if [ "$service_missing" = 1 ]; then
  exit 1
fi

# Formatting first: it takes a second and needs nothing built. (rustfmt and clippy come with
# the default toolchain profile; a minimal one lacks them.)
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
cargo fmt --all --check

# The Kafka-protocol broker the Kafka tests start (one per test, on a port of its own): tansu,
# built once and reused (8-25 minutes on two cores). It needs no other service.
tansu_bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
if [ ! -x "$tansu_bin" ]; then
  cargo install tansu --version 0.6.0 --features dynostore,libsql --locked -j 2
fi
export TANSU="$tansu_bin"

# The SQS-protocol server the SQS tests start (one per test, on a port of its own): moto, in a
# venv of its own outside the checkout, made once and reused.
moto_venv="${XDG_CACHE_HOME:-$HOME/.cache}/weir/moto"
moto_version=5.2.5
if [ ! -x "$moto_venv/bin/moto_server" ] || ! "$moto_venv/bin/pip" show moto 2>/dev/null | grep -qx "Version: $moto_version"; then
  python3 -m venv "$moto_venv"
  "$moto_venv/bin/pip" install --quiet "moto[server]==$moto_version"
fi
export MOTO_SERVER="$moto_venv/bin/moto_server"

# The status page is tested in a real browser: Debian's chromium and its WebDriver server.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  apt_get="apt-get"
  [ "$(id -u)" = 0 ] || apt_get="sudo apt-get"
  export DEBIAN_FRONTEND=noninteractive
  $apt_get install -y -q chromium chromium-driver \
    || { $apt_get update -q && $apt_get install -y -q chromium chromium-driver; }
fi

# The plugins the tests run (Rust, JavaScript, Python), with their toolchains on first use.
scripts/build-plugins.sh

# The Rust plugins' allocator, tested natively (the plugins themselves are Wasm, tested through
# the host below); its own target dir beside the plugins' Wasm one.
(cd plugins && cargo test -p weir-plugin-alloc --lib --locked -j 2 --target-dir ../var/plugin-test-target)

# Lints before tests: a warning fails the suite (the lints are set in Cargo.toml).
# -j 2: the machine has two cores; more parallel rustc processes only add memory pressure.
cargo clippy --workspace --all-targets --locked -j 2 -- -D warnings
cargo test --workspace --locked -j 2
