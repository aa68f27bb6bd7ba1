# syntax=docker/dockerfile:1

# Build stage: wheels for accolade[server] and all of its dependencies. The project's build
# regenerates client/accolade/v1 from protos/ (grpcio-tools is a build requirement only).
FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY protos/ protos/
COPY tools/gen_protos.py tools/
COPY client/ client/
COPY server/ server/
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[server]"

# Runtime stage: the installed wheels only, no compilers and no build tools.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Versions were resolved when the wheels were built; --no-index installs exactly those.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "accolade[server]" \
    && groupadd --system --gid 10001 accolade \
    && useradd --system --uid 10001 --gid accolade --home-dir /app --shell /usr/sbin/nologin accolade \
    && mkdir -p /app/data \
    && chown accolade:accolade /app/data
WORKDIR /app
# The embedded SQLite database lives in the data directory (mount a volume there to keep it);
# set ACCOLADE_DATABASE_URL=postgresql://... and run `accolade migrate` for PostgreSQL.
ENV ACCOLADE_DATABASE_URL=sqlite+aiosqlite:////app/data/accolade.db \
    ACCOLADE_LISTEN=0.0.0.0:50051 \
    ACCOLADE_HTTP_LISTEN=0.0.0.0:8080
VOLUME ["/app/data"]
USER 10001:10001
# gRPC, and HTTP (Connect JSON API, badge pictures, profile pages).
EXPOSE 50051 8080
# Asks the server's own gRPC health service (grpc_health comes with the [server] extra).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as hg; port = os.environ.get('ACCOLADE_LISTEN', ':50051').rpartition(':')[2]; reply = hg.HealthStub(grpc.insecure_channel('127.0.0.1:' + port)).Check(h.HealthCheckRequest(), timeout=4); sys.exit(0 if reply.status == h.HealthCheckResponse.SERVING else 1)"]
CMD ["accolade", "serve"]
