#!/usr/bin/env bash
# The whole test suite: typecheck, unit + Node swarm tests (vitest), then browser swarms
# (Playwright on Debian's Chromium, WebGPU through SwiftShader). Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci
bash scripts/ensure-chromium.sh
bash scripts/ensure-packages.sh   # nginx, prometheus/promtool, openssl for deploy/ and TLS tests
echo "== typecheck"
npx tsc --noEmit -p .
echo "== unit and Node swarm tests (vitest)"
npx vitest run
echo "== client build"
npx vite build --logLevel warn
echo "== browser swarm tests (Playwright)"
npx playwright test
