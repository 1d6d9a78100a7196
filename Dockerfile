# dialback container image: `docker build -t dialback:0.1.0 .` (see docs/deploy.md).
# One process per container serves both ports; scale with replicas, not workers.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --root-user-action=ignore --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DIALBACK_HOST=0.0.0.0 \
    DIALBACK_DATA_DIR=/var/lib/dialback \
    DIALBACK_LOG_FORMAT=json
# The chart's podSecurityContext runs as this UID/GID (10001); the root file system can be
# read-only: only /var/lib/dialback and /tmp are written.
RUN groupadd --system --gid 10001 dialback \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/dialback \
      --shell /usr/sbin/nologin dialback \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/dialback
COPY --from=build /install /usr/local
WORKDIR /var/lib/dialback
USER 10001:10001
EXPOSE 3005 3050
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3050/health/live', timeout=4)"]
CMD ["dialback", "serve"]
