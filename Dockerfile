# cwa2mqtt container image. The README's "Container" section has the docker and podman commands
# (podman: build with --format docker, or the HEALTHCHECK below is dropped).
#
#   docker build -t cwa2mqtt .
#   docker run -d --name cwa2mqtt -p 127.0.0.1:8099:8099 \
#     -v /srv/cwa2mqtt/config.yaml:/config/config.yaml:ro \
#     -v /srv/cwa2mqtt/cwa_password:/run/secrets/cwa_password:ro \
#     cwa2mqtt
#
# Configuration: the mounted /config/config.yaml (its cwa.password_file names the mounted secret)
# plus CWA2MQTT_* environment variables, which override the file. Mounted files must be readable by
# uid 10001, the user the bridge runs as. Passwords belong in mounted files, never in this image nor
# in -e variables (those show in `docker inspect`): nothing here carries a secret.
# Extras: --build-arg EXTRAS=iwa,demo also installs the embedded broker for `cwa2mqtt demo`.
ARG PYTHON_IMAGE=python:3.12-slim

# ---- builder: resolve and install into /install (copied to /usr/local below) ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first, in their own layer: it reads only pyproject.toml, so a code change reuses it
# instead of downloading every dependency again. They all have wheels: no compiler is installed.
COPY scripts/docker-install.sh scripts/
COPY pyproject.toml ./
ARG EXTRAS=iwa
RUN EXTRAS="${EXTRAS}" PYTHON=python3 sh scripts/docker-install.sh deps /src /wheels
# Then the code; this step installs from /wheels only.
COPY README.md LICENSE ./
COPY bridge/ bridge/
RUN EXTRAS="${EXTRAS}" PYTHON=python3 sh scripts/docker-install.sh app /src /wheels /install

# ---- final: the runtime, non-root ----
FROM ${PYTHON_IMAGE}
ARG VERSION=0.2.0
LABEL org.opencontainers.image.title="cwa2mqtt" \
      org.opencontainers.image.description="Bridge Microsoft Communicator Web Access (OCS 2007) presence to MQTT and Home Assistant" \
      org.opencontainers.image.source="https://github.com/cwa2mqtt/cwa2mqtt" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"

# The packaging default (read below the user's config file, so `http.listen` in the file wins):
# inside a container, loopback is the container's own, so the HTTP endpoint must bind all of the
# container's interfaces for a published port (-p) to reach it. That publishes the board and its
# API: publish it on the host's loopback (-p 127.0.0.1:8099:8099), or set http.token when the port
# is reachable beyond loopback. With --network host, set http.listen: 127.0.0.1:8099 in the file.
RUN groupadd --system --gid 10001 cwa2mqtt \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cwa2mqtt \
 && mkdir -p /usr/share/cwa2mqtt \
 && printf 'http:\n  listen: "0.0.0.0:8099"\n' > /usr/share/cwa2mqtt/defaults.yaml
COPY --from=builder /install /usr/local

# PYTHONUNBUFFERED: log lines reach `docker logs` at once, not when a buffer fills.
# No CWA2MQTT_<SECTION>__<KEY> setting here: those would override what the user wrote in the file.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CWA2MQTT_CONFIG=/config/config.yaml \
    CWA2MQTT_DEFAULTS_FILE=/usr/share/cwa2mqtt/defaults.yaml

USER 10001:10001
WORKDIR /config
EXPOSE 8099
# Probes http://127.0.0.1:8099/healthz from inside (that path never needs http.token).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["cwa2mqtt", "health"]
# Exec form: cwa2mqtt is PID 1 and receives `docker stop`'s SIGTERM itself (clean stop, exit 0,
# within 5 s); a shell form would swallow it and the bridge would be killed after 10 s.
ENTRYPOINT ["cwa2mqtt"]
CMD ["run", "-c", "/config/config.yaml"]
