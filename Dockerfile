# cwa2mqtt container image.
#
#   docker build -t cwa2mqtt .
#   docker run -d --name cwa2mqtt -p 127.0.0.1:8099:8099 \
#     -v /srv/cwa2mqtt/config.yaml:/config/config.yaml:ro \
#     -v /srv/cwa2mqtt/secrets:/run/secrets:ro \
#     -e CWA2MQTT_CWA__PASSWORD_FILE=/run/secrets/cwa_password \
#     cwa2mqtt
#
# Configuration: a mounted file at /config/config.yaml plus CWA2MQTT_* environment variables,
# which override the file (interface.md §3). Passwords belong in mounted files (password_file,
# Docker/Kubernetes secrets), never in this image: nothing here carries a secret.
# Extras: --build-arg EXTRAS=iwa,demo also installs the embedded broker for `cwa2mqtt demo`.

# ---- builder: resolve and install into /install (copied to /usr/local below) ----
FROM python:3.12-slim AS builder
# A compiler for any dependency that has no wheel for the target platform; the builder stage is
# thrown away, so none of this reaches the final image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the install needs (also keeps the layer cache valid when tests or docs change).
COPY scripts/docker-install.sh scripts/
COPY pyproject.toml README.md ./
COPY bridge/ bridge/
ARG EXTRAS=iwa
RUN EXTRAS="${EXTRAS}" PYTHON=python3 sh scripts/docker-install.sh /src /install

# ---- final: the runtime, non-root ----
FROM python:3.12-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="cwa2mqtt" \
      org.opencontainers.image.description="Bridge Microsoft Communicator Web Access (OCS 2007) presence to MQTT and Home Assistant" \
      org.opencontainers.image.source="https://github.com/cwa2mqtt/cwa2mqtt" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"

RUN groupadd --system --gid 10001 cwa2mqtt \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cwa2mqtt
COPY --from=builder /install /usr/local

# PYTHONUNBUFFERED: log lines reach `docker logs` at once, not when a buffer fills.
# CWA2MQTT_HTTP__LISTEN: the one place the health/metrics/board endpoint binds beyond loopback
# (the default is 127.0.0.1:8099). Inside a container, loopback is the container's own: Docker's
# port mapping could not reach it. The HEALTHCHECK still probes from inside. Publish the port on
# the host's loopback (-p 127.0.0.1:8099:8099) unless you mean to expose the board.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CWA2MQTT_CONFIG=/config/config.yaml \
    CWA2MQTT_HTTP__LISTEN=0.0.0.0:8099

USER 10001:10001
WORKDIR /config
EXPOSE 8099
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["cwa2mqtt", "health"]
# Exec form: cwa2mqtt is PID 1 and receives `docker stop`'s SIGTERM itself (clean stop, exit 0,
# interface.md §7.8); a shell form would swallow it and the bridge would be killed after 10 s.
ENTRYPOINT ["cwa2mqtt"]
CMD ["run", "-c", "/config/config.yaml"]
