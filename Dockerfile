# claylb image: build with the dev dependencies, run with the production ones only.
#   docker build -t claylb .
#   docker run --rm -e SESSION_SECRET=... -e REDIS_URL=redis://redis:6379 -p 8080:8080 claylb
ARG NODE_IMAGE=node:20-bookworm-slim

# 1. compile TypeScript to dist/ (tsc is a dev dependency)
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npm run build

# 2. the production dependencies alone (no scripts: nothing to compile)
FROM ${NODE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# 3. the runtime: tini as PID 1 forwards SIGTERM to claylb, which drains (/readyz 503, accepts for
#    shutdown.acceptGraceMs, finishes what is in flight within shutdown.timeoutMs, stops its workers);
#    nothing is installed at start
FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY config ./config
# the image's own unprivileged user (uid 1000); the app files stay root-owned and read-only to it
USER node
EXPOSE 8080 9180
HEALTHCHECK --interval=5s --timeout=2s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9180/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/claylb"]
CMD ["start", "--config", "config/container.yaml"]
