# gpulut: the server (with its bundled search worker) and the device agent in one image.
#
#   docker build -t gpulut .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=... -e GPULUT_ADMIN_TOKEN=... gpulut
#   docker run --rm --entrypoint gpulut-agent gpulut info      # the agent, on Mesa lavapipe
#
# Migrations are embedded in the server binary (sqlx::migrate!) and applied at start.

# ---- build -------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# Queries are checked at run time (server/src/db), so the build needs no database.
ENV CARGO_TERM_COLOR=never
COPY . .
RUN cargo build --release --locked -p gpulut-server -p gpulut-agent \
 && install -D -m 0755 target/release/gpulut-server /out/gpulut-server \
 && install -D -m 0755 target/release/gpulut-agent /out/gpulut-agent

# ---- runtime -----------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to remote evaluators/servers; libssl3: in case a dependency links
# OpenSSL (native-tls); libvulkan1 + mesa-vulkan-drivers: the Vulkan loader and Mesa's CPU
# driver (lavapipe), so the agent runs without a GPU.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates libssl3 libvulkan1 mesa-vulkan-drivers \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 gpulut \
 && useradd --system --uid 10001 --gid gpulut --home-dir /var/lib/gpulut --create-home \
        --shell /usr/sbin/nologin gpulut
COPY --from=builder /out/gpulut-server /out/gpulut-agent /usr/local/bin/
USER gpulut
WORKDIR /var/lib/gpulut
ENV GPULUT_LISTEN=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["gpulut-server", "healthcheck", "--url", "http://127.0.0.1:8080"]
ENTRYPOINT ["gpulut-server"]
CMD ["serve"]
