#!/usr/bin/env bash
# Makes sure the NATS server (with JetStream) used by the suite is up at 127.0.0.1:4222,
# starting it when it is down. Fails (never skips) when it cannot be reached.
set -euo pipefail
up() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }
if ! up; then
  echo "NATS is down; starting it"
  if [[ -x /usr/sbin/nats-server ]]; then
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
  fi
  for _ in $(seq 1 30); do up && break; sleep 1; done
fi
up || { echo "NATS at 127.0.0.1:4222 cannot be reached" >&2; exit 1; }
echo "NATS ready: 127.0.0.1:4222"
