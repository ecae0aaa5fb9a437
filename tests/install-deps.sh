#!/usr/bin/env bash
# Installs what `make test` needs and is missing: Debian packages via apt-get, and the npm test
# clients from tests/package-lock.json (npm ci). Safe to run again: it installs only what's missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Libraries are checked as Debian packages; tools by their command, so a node/npm installed
# some other way (nodesource, nvm) is used as it is.
# `--build`: only what building herald needs (make run); otherwise everything make test needs.
BUILD_PKGS=(gcc make libinih-dev libssl-dev zlib1g-dev libjansson-dev liblmdb-dev libhiredis-dev)
# systemd: systemd-analyze verifies packaging/herald.service (nothing is started); python3 (below)
# also holds the NOTIFY_SOCKET the readiness test binds; nginx + openssl: the reverse-proxy test
# (tests/integration/39-proxy.test.mjs runs its own nginx on a free port); openssl also makes the
# throwaway CA and certificates of tests/integration/37-tls.test.mjs (with curl, mosquitto-clients)
PKGS=("${BUILD_PKGS[@]}" clang libclang-rt-14-dev redis-server redis-sentinel python3-websockets mosquitto-clients mosquitto python3-paho-mqtt procps systemd nginx openssl)
[ "${1:-}" = --build ] && PKGS=("${BUILD_PKGS[@]}")
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
apt_install() {
    [ ${#missing[@]} -gt 0 ] || return 0
    echo "# installing Debian packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq || true
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
if [ "${1:-}" = --build ]; then
    apt_install
    exit 0
fi
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# the browser tests (tests/e2e) drive Debian's Chromium through playwright-core
command -v chromium >/dev/null || missing+=(chromium)
apt_install

if [ -f tests/package-lock.json ]; then
    stamp=tests/node_modules/.herald-lock-stamp
    if [ ! -f "$stamp" ] || ! cmp -s tests/package-lock.json "$stamp"; then
        echo "# installing npm test clients (npm ci)"
        (cd tests && npm ci --no-audit --no-fund --loglevel=error)
        cp tests/package-lock.json "$stamp"
    fi
fi
