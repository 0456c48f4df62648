#!/usr/bin/env bash
# Make sure a Chromium for the Playwright e2e tests exists.
# Uses ${CHROMIUM_PATH:-/usr/bin/chromium}; if missing, installs Debian's
# `chromium` package with apt-get (via sudo when not root). Never downloads
# a Playwright-managed browser.
set -euo pipefail

CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"

report_version() {
  local version
  version="$("$CHROMIUM_PATH" --version 2>/dev/null || true)"
  echo "ensure-chromium: using $CHROMIUM_PATH (${version:-version unknown})"
}

if [ -x "$CHROMIUM_PATH" ]; then
  report_version
  exit 0
fi

echo "ensure-chromium: $CHROMIUM_PATH not found; installing Debian's chromium package"

if [ "$CHROMIUM_PATH" != "/usr/bin/chromium" ]; then
  echo "ensure-chromium: note: apt installs /usr/bin/chromium, not $CHROMIUM_PATH" >&2
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: ERROR: apt-get not available; install Chromium yourself and set CHROMIUM_PATH" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
    echo "ensure-chromium: not root, using sudo"
  else
    echo "ensure-chromium: ERROR: not root and passwordless sudo is unavailable;" >&2
    echo "  run: sudo apt-get install -y chromium   (or set CHROMIUM_PATH to an existing Chromium)" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "ensure-chromium: running ${SUDO[*]:+${SUDO[*]} }apt-get update"
if ! "${SUDO[@]}" apt-get update; then
  echo "ensure-chromium: ERROR: apt-get update failed" >&2
  exit 1
fi
echo "ensure-chromium: running ${SUDO[*]:+${SUDO[*]} }apt-get install -y chromium"
if ! "${SUDO[@]}" apt-get install -y --no-install-recommends chromium; then
  echo "ensure-chromium: ERROR: apt-get install chromium failed" >&2
  exit 1
fi

if [ ! -x "$CHROMIUM_PATH" ]; then
  if [ -x /usr/bin/chromium ]; then
    echo "ensure-chromium: ERROR: installed /usr/bin/chromium but $CHROMIUM_PATH still missing; set CHROMIUM_PATH=/usr/bin/chromium" >&2
  else
    echo "ensure-chromium: ERROR: chromium package installed but $CHROMIUM_PATH is missing" >&2
  fi
  exit 1
fi

echo "ensure-chromium: installed chromium"
report_version
