#!/usr/bin/env bash
# Lists (and kills) processes of one test run that outlived it: coordinator processes
# (coordinator/main) and Chromium. A process belongs to the run when its environment carries
# SWARM_TEST_RUN=<id> (scripts/test.sh exports it; every child inherits it).
# Usage: leftover-processes.sh <id>; exit status 1 when any was left.
set -uo pipefail
id="${1:?usage: leftover-processes.sh <run id>}"
left=0
for dir in /proc/[0-9]*; do
  pid="${dir#/proc/}"
  [ "$pid" = "$$" ] && continue
  grep -qzx "SWARM_TEST_RUN=$id" "$dir/environ" 2>/dev/null || continue
  cmd="$(tr '\0' ' ' < "$dir/cmdline" 2>/dev/null)"
  case "$cmd" in
    *coordinator/main*|*chromium*|*chrome*|*headless_shell*)
      echo "left behind by the test run: pid $pid: ${cmd:0:200}" >&2
      kill -KILL "$pid" 2>/dev/null
      left=1
      ;;
  esac
done
exit "$left"
