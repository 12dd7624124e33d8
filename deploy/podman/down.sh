#!/usr/bin/env bash
# Tears down what up.sh started: the stack (with its volumes), the healthcheck pump, the API socket.
# usage: down.sh PROJECT_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export STATE=${STATE:-/tmp/podman-stack} CONTAINERS_CONF=$here/containers.conf
export DOCKER_HOST=unix://$STATE/podman.sock
[ -n "${1:-}" ] && (cd "$1" && docker-compose down -v >/dev/null 2>&1)
for f in pump service; do [ -f "$STATE/$f.pid" ] && kill "$(cat "$STATE/$f.pid")" 2>/dev/null; rm -f "$STATE/$f.pid"; done
rm -f "$STATE/podman.sock"
