# The disaster recovery service.
#   docker build -t disaster-recovery-service:0.1.0 .
#   (no registry reachable: bash scripts/ci/build-image.sh, which builds FROM the locally made Node base)
# Runs as the image's non-root user `node` (uid 1000) and works on a read-only root filesystem: it writes only to
# DR_DATA_DIR (/var/lib/dr, a volume) and /tmp (mount a tmpfs or an emptyDir there). The tool versions inside are
# listed in the README ("Container and Kubernetes") and checked by test/container/image.spec.ts.
# BASE_IMAGE: Node.js 22 on Debian bookworm; the official image, or scripts/ci/build-local-base-images.sh's.
ARG BASE_IMAGE=node:22-bookworm-slim

# Build stage: compile TypeScript and build the zstd native binding; keep only production dependencies.
FROM ${BASE_IMAGE} AS build
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# Runtime stage: the service, the tools its engines call, and the ops scripts (curl + jq) for the CronJob.
FROM ${BASE_IMAGE} AS runtime
# PostgreSQL client tools (pg_dump, pg_restore, pg_basebackup; they must be at least the server's major version).
# Default: Debian bookworm's postgresql-client-15 (dumps servers up to PostgreSQL 15). For newer servers build with
# --build-arg PGDG=true --build-arg PG_MAJOR=17, which adds the PostgreSQL project's apt repository (PGDG).
ARG PG_MAJOR=15
ARG PGDG=false
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && if [ "${PGDG}" = true ]; then \
      apt-get install -y --no-install-recommends postgresql-common \
      && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y; \
    fi \
 && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" mariadb-client tar zstd tini curl jq \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    DR_DATA_DIR=/var/lib/dr \
    DR_PG_BIN_DIR=/usr/lib/postgresql/${PG_MAJOR}/bin \
    PORT=8891
# Everything under /app stays owned by root: the service (uid 1000) can read its code but never change it.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY api-docs ./api-docs
COPY i18n ./i18n
COPY scripts ./scripts
RUN mkdir -p /var/lib/dr && chown node:node /var/lib/dr
USER node
VOLUME ["/var/lib/dr"]
EXPOSE 8891
# Docker's health (and compose's service_healthy): the liveness probe, every 10 s. Start period 120 s: on 2 busy
# cores the service listened 15-51 s after the start (embedded database and migrations); a failure within it does
# not count, the first success makes the container healthy at once.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8891/actuator/health/liveness"]
# tini is PID 1: it forwards SIGTERM to node (graceful shutdown) and reaps pg_dump/tar children.
ENTRYPOINT ["/usr/bin/tini", "--"]
# --no-incremental-marking: see README (Node 20 spends ~30% of a backup in GC without it).
CMD ["node", "--no-incremental-marking", "dist/main.js"]
