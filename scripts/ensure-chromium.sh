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

bash "$(dirname "$0")/apt-install.sh" ensure-chromium chromium || {
  echo "ensure-chromium: (or set CHROMIUM_PATH to an existing Chromium)" >&2
  exit 1
}

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
