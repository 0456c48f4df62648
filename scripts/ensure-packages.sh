#!/usr/bin/env bash
# Make sure the Debian packages the deployment tests start are installed: nginx (the reverse
# proxy in deploy/nginx/), prometheus and promtool (deploy/prometheus/), openssl (--tls
# self-signed). Idempotent: apt-get runs only when a command is missing. Fails loudly, never
# skips: the tests that need these would otherwise have nothing to start.
set -euo pipefail

# command -> Debian package that provides it
declare -A NEED=(
  [nginx]=nginx
  [prometheus]=prometheus
  [promtool]=prometheus
  [openssl]=openssl
)
PATH="$PATH:/usr/sbin:/sbin"

missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "ensure-packages: nginx, prometheus, promtool, openssl present"
  exit 0
fi
# unique package names
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "ensure-packages: installing Debian package(s): ${pkgs[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-packages: ERROR: apt-get not available; install ${pkgs[*]} yourself" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "ensure-packages: ERROR: not root and passwordless sudo is unavailable; run: sudo apt-get install -y ${pkgs[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update || { echo "ensure-packages: ERROR: apt-get update failed" >&2; exit 1; }
# policy-rc.d: the packages' post-install scripts must not start system services (the tests start
# their own instances on their own ports).
restore_policy=0
if [ ! -e /usr/sbin/policy-rc.d ] && [ "$(id -u)" -eq 0 ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && restore_policy=1
fi
status=0
"${SUDO[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}" || status=$?
[ "$restore_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
if [ "$status" -ne 0 ]; then
  echo "ensure-packages: ERROR: apt-get install ${pkgs[*]} failed" >&2
  exit 1
fi
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "ensure-packages: ERROR: $cmd still missing after installing ${NEED[$cmd]}" >&2; exit 1; }
done
echo "ensure-packages: installed ${pkgs[*]}"
