#!/usr/bin/env bash
# Installs what alarmd's tests need, skipping whatever is already there: Deno (from npm, the
# pinned version), and from Debian's packages redis-server (multi-instance tests), chromium
# (browser tests), nginx (deploy/nginx.conf in front of two instances) and systemd
# (systemd-analyze checks deploy/alarmd.service; the tests start their own servers, not services).
# Safe to run repeatedly.
set -euo pipefail

DENO_VERSION="2.9.6"

have_deno() {
  command -v deno >/dev/null 2>&1 && deno --version 2>/dev/null | head -n1 | grep -q "^deno ${DENO_VERSION} "
}

if ! have_deno; then
  echo "install: deno ${DENO_VERSION} from npm"
  npm install -g --no-fund --no-audit "deno@${DENO_VERSION}" >/dev/null
  have_deno || { echo "install: deno ${DENO_VERSION} is not on PATH after npm install" >&2; exit 1; }
fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install: ${missing[*]} from apt"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install: deno $(deno --version | head -n1 | cut -d' ' -f2), $(redis-server --version | cut -d' ' -f3), $(chromium --version 2>/dev/null | head -n1), $(systemd-analyze --version | head -n1), $(nginx -v 2>&1)"
