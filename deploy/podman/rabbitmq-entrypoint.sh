#!/bin/sh
# Minimal stand-in for the official rabbitmq image's entrypoint: the default user from the
# environment (the broker's only user; guest, limited to loopback, is not created then).
set -e
if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then
  printf 'default_user = %s\ndefault_pass = %s\n' \
    "$RABBITMQ_DEFAULT_USER" "${RABBITMQ_DEFAULT_PASS:?RABBITMQ_DEFAULT_PASS is required}" \
    > /etc/rabbitmq/rabbitmq.conf
fi
mkdir -p /var/lib/rabbitmq /var/log/rabbitmq
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
# As root, Debian's rabbitmq-server wrapper runs the broker as the rabbitmq user, logging to stdout.
exec "$@"
