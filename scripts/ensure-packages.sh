#!/usr/bin/env bash
# Make sure the Debian packages the deployment tests start are installed: nginx (the reverse
# proxy in deploy/nginx/), prometheus and promtool (deploy/prometheus/), openssl (--tls
# self-signed), turnserver (coturn, the TURN relay in deploy/coturn/). Idempotent: apt-get runs
# only when a command is missing. Fails loudly, never skips: the tests that need these would
# otherwise have nothing to start.
set -euo pipefail

# command -> Debian package that provides it
declare -A NEED=(
  [nginx]=nginx
  [prometheus]=prometheus
  [promtool]=prometheus
  [openssl]=openssl
  [turnserver]=coturn
)
PATH="$PATH:/usr/sbin:/sbin"

missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "ensure-packages: nginx, prometheus, promtool, openssl, turnserver present"
  exit 0
fi
# unique package names
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "ensure-packages: installing Debian package(s): ${pkgs[*]}"

bash "$(dirname "$0")/apt-install.sh" ensure-packages "${pkgs[@]}"
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "ensure-packages: ERROR: $cmd still missing after installing ${NEED[$cmd]}" >&2; exit 1; }
done
echo "ensure-packages: installed ${pkgs[*]}"
