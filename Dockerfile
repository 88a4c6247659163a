# claylb image: build with the dev dependencies, run with the production ones only.
#   docker build -t claylb .
#   docker run --rm -e SESSION_SECRET=... -e CLAYLB_ADMIN_TOKEN=... -e REDIS_URL=redis://redis:6379 -p 8080:8080 claylb
# The base: Node 24 (the current LTS), an exact release, so a rebuild gets the same runtime. Moving it
# is a change to this line (and to the base.name label below, which the Dockerfile test compares).
# Pin it by digest too where your registry states one: NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:…
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

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
# tini at the version Debian bookworm ships (an exact package version: a rebuild cannot change it)
ARG TINI_VERSION=0.19.0-1+b3
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini=${TINI_VERSION} \
 && rm -rf /var/lib/apt/lists/*
ARG NODE_IMAGE
LABEL org.opencontainers.image.title="claylb" \
      org.opencontainers.image.description="A stateless request-routing load balancer: raw-socket HTTP/1.1 and HTTP/2 proxy, ephemeral workers, Redis sessions, idempotency keys" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="claylb authors" \
      org.opencontainers.image.base.name="docker.io/library/${NODE_IMAGE}"
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
