#!/usr/bin/env bash
# The whole test suite: typecheck, unit + Node swarm tests (vitest), then browser swarms
# (Playwright on Debian's Chromium, WebGPU through SwiftShader). Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Every process this run starts inherits the marker; at the end (also on failure) none of its
# coordinator or Chromium processes may be left running.
export SWARM_TEST_RUN="${SWARM_TEST_RUN:-$$-$(date +%s)}"
check_leftovers() {
  local rc=$?
  if ! bash scripts/leftover-processes.sh "$SWARM_TEST_RUN"; then
    echo "FAIL: the test run left coordinator/Chromium processes running (killed now)" >&2
    [ "$rc" -eq 0 ] && rc=1
  fi
  exit "$rc"
}
trap check_leftovers EXIT
[ -d node_modules ] || npm ci
bash scripts/ensure-chromium.sh
bash scripts/ensure-packages.sh   # nginx, prometheus/promtool, openssl for deploy/ and TLS tests
echo "== typecheck"
npx tsc --noEmit -p .
echo "== import cycles (madge)"
npm run --silent check:cycles
echo "== unit and Node swarm tests (vitest)"
npx vitest run
echo "== client build"
npx vite build --logLevel warn
echo "== browser swarm tests (Playwright)"
npx playwright test
