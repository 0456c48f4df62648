#!/usr/bin/env bash
# Installs Debian packages for the project's own scripts: `apt-install.sh <who> <package>...`.
# Uses apt-get as root, or through passwordless sudo; updates the lists first; stops the packages'
# post-install scripts from starting system services (the tests start their own instances on
# their own ports). Fails loudly with what to run by hand, never skips. `<who>` prefixes messages.
set -euo pipefail

who="$1"
shift
pkgs=("$@")

if ! command -v apt-get >/dev/null 2>&1; then
  echo "$who: ERROR: apt-get not available; install ${pkgs[*]} yourself" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
    echo "$who: not root, using sudo"
  else
    echo "$who: ERROR: not root and passwordless sudo is unavailable; run: sudo apt-get install -y ${pkgs[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "$who: running ${SUDO[*]:+${SUDO[*]} }apt-get update"
"${SUDO[@]}" apt-get update || { echo "$who: ERROR: apt-get update failed" >&2; exit 1; }
restore_policy=0
if [ ! -e /usr/sbin/policy-rc.d ] && [ "$(id -u)" -eq 0 ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && restore_policy=1
fi
echo "$who: running ${SUDO[*]:+${SUDO[*]} }apt-get install -y ${pkgs[*]}"
status=0
"${SUDO[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}" || status=$?
[ "$restore_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
if [ "$status" -ne 0 ]; then
  echo "$who: ERROR: apt-get install ${pkgs[*]} failed" >&2
  exit 1
fi
