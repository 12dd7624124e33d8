#!/usr/bin/env bash
# Tears down what up.sh started: the stack (with its volumes), the healthcheck pump, the API socket.
# usage: down.sh PROJECT_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export STATE=${STATE:-/tmp/podman-stack} CONTAINERS_CONF=$here/containers.conf
export DOCKER_HOST=unix://$STATE/podman.sock
[ -n "${1:-}" ] && (cd "$1" && docker-compose down -v >/dev/null 2>&1)
# The pump is a plain shell loop: SIGKILL, as it may ignore SIGTERM (it did in CI, where pumps of
# torn-down stacks kept polling podman every 3 s and slowed the next stacks). The API service gets
# SIGTERM, to stop cleanly.
for f in pump service; do
  signal=TERM; [ "$f" = pump ] && signal=KILL
  [ -f "$STATE/$f.pid" ] && kill -s "$signal" "$(cat "$STATE/$f.pid")" 2>/dev/null
  rm -f "$STATE/$f.pid"
done
rm -f "$STATE/podman.sock"
