# weir's container image. The build stage runs the README's set-up steps (scripts/quickstart.sh
# without the demo run): scripts/build-plugins.sh, then `cargo build --release --locked -p weir`,
# on the toolchain the project uses (Rust 1.95 on Debian bookworm, Node.js 20, Python 3). The
# image is Debian bookworm-slim with the binary and the example plugins, run as a non-root user.
#
#   docker build -t weir:0.1.0 --build-arg WEIR_GIT_COMMIT=$(git rev-parse --short HEAD) .
#   docker run --rm -v "$PWD/pipelines:/etc/weir/pipelines:ro" -v weir-state:/var/lib/weir weir:0.1.0
#
# .git is not sent to the build (.dockerignore), so `weir --version` says the commit given as
# WEIR_GIT_COMMIT, or `unknown`.

FROM node:20-bookworm-slim AS node

FROM rust:1.95-slim-bookworm AS build
# librdkafka is built from rdkafka's bundled source (gcc, g++, make, the OpenSSL headers);
# aws-lc and zstd are C too (cmake, perl); componentize-py goes into a venv (python3-venv).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       build-essential cmake perl pkg-config libssl-dev python3 python3-venv git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# Node.js 20 and npm for componentize-js (Debian's bookworm has 18).
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
WORKDIR /src
COPY . .
ARG WEIR_GIT_COMMIT=
ENV WEIR_GIT_COMMIT=${WEIR_GIT_COMMIT}
RUN scripts/build-plugins.sh \
    && cargo build --release --locked -p weir \
    && mkdir -p /out/plugins \
    && for wasm in plugins/*/*.wasm; do cp "$wasm" /out/plugins/; done

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 weir \
    && useradd --system --uid 10001 --gid weir --home-dir /var/lib/weir --shell /usr/sbin/nologin weir \
    && mkdir -p /etc/weir/pipelines /var/lib/weir \
    && chown weir:weir /var/lib/weir
COPY --from=build /src/target/release/weir /usr/local/bin/weir
# The example plugins, for pipelines to name: path = "/usr/share/weir/plugins/redact.wasm".
COPY --from=build /out/plugins/ /usr/share/weir/plugins/
# Checkpoints, the default DLQ files and the plugins' compile cache.
ENV WEIR_STATE_DIR=/var/lib/weir
VOLUME ["/var/lib/weir"]
WORKDIR /var/lib/weir
USER weir:weir
# The admin API (set WEIR_ADMIN__ADDRESS=0.0.0.0:9464 and WEIR_ADMIN__TOKEN to reach it from
# outside the container: without a token weir listens on loopback only).
EXPOSE 9464
ENTRYPOINT ["weir"]
CMD ["run", "/etc/weir/pipelines"]
