# syntax=docker/dockerfile:1
# Build stage: compile TypeScript and build the zstd native binding.
FROM node:22-bookworm-slim AS build
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Runtime stage: the service with the tools its engines call.
FROM node:22-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client tar zstd ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production DR_DATA_DIR=/var/lib/dr PORT=8891
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY api-docs ./api-docs
COPY i18n ./i18n
RUN mkdir -p /var/lib/dr && chown node:node /var/lib/dr
USER node
VOLUME ["/var/lib/dr"]
EXPOSE 8891
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8891/actuator/health/liveness || exit 1
# --no-incremental-marking: see README (Node 20 spends ~30% of a backup in GC without it).
CMD ["node", "--no-incremental-marking", "dist/main.js"]
