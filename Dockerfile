# gpulut in one image: the server (with its bundled search worker and the dashboard), the
# device agent, and the user CLI.
#
#   docker build -t gpulut .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=... -e GPULUT_ADMIN_TOKEN=... gpulut
#   docker run --rm --entrypoint gpulut-agent gpulut info      # the agent, on Mesa lavapipe
#   docker run --rm --entrypoint gpulut gpulut --help          # the user CLI
#
# Offline builds: nothing in this build downloads anything but crates (pinned by Cargo.lock)
# and Debian packages; the dashboard's chart library and Swagger UI are in the source tree.
# With the crates vendored first, the Rust build needs no network at all:
#
#   cargo vendor --locked vendor >/dev/null && docker build -t gpulut .
#
# Migrations are embedded in the server binary (sqlx::migrate!) and applied at start.

# ---- build -------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# Queries are checked at run time (server/src/db), so the build needs no database.
ENV CARGO_TERM_COLOR=never
COPY . .
# A vendor/ directory (from `cargo vendor --locked vendor`) replaces crates.io and turns the
# build offline; without one, cargo fetches exactly the versions Cargo.lock names.
RUN set -eu; offline=""; \
    if [ -d vendor ]; then \
        mkdir -p .cargo; \
        printf '[source.crates-io]\nreplace-with = "vendored-sources"\n\n[source.vendored-sources]\ndirectory = "vendor"\n' >> .cargo/config.toml; \
        offline="--offline"; \
    fi; \
    cargo build --release --locked $offline -p gpulut-server -p gpulut-agent -p gpulut-cli; \
    for bin in gpulut-server gpulut-agent gpulut; do \
        install -D -m 0755 "target/release/$bin" "/out/$bin"; \
    done; \
    install -D -m 0755 docker/demo-agent /out/gpulut-demo-agent

# ---- runtime -----------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to remote evaluators/servers; libvulkan1 + mesa-vulkan-drivers: the
# Vulkan loader and Mesa's CPU driver (lavapipe), so the agent runs without a GPU; jq: the
# demo agent's start-up script reads the JSON the CLI prints.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates libvulkan1 mesa-vulkan-drivers jq \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 gpulut \
 && useradd --system --uid 10001 --gid gpulut --home-dir /var/lib/gpulut --create-home \
        --shell /usr/sbin/nologin gpulut \
 && install -d -o gpulut -g gpulut -m 0700 /var/lib/gpulut/agent
COPY --from=builder /out/ /usr/local/bin/
# /var/lib/gpulut/agent exists before USER so that a fresh named volume mounted there (the
# demo agent's credentials and spool) takes its owner.
USER gpulut
WORKDIR /var/lib/gpulut
ENV GPULUT_LISTEN=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["gpulut-server", "healthcheck", "--url", "http://127.0.0.1:8080"]
ENTRYPOINT ["gpulut-server"]
CMD ["serve"]
