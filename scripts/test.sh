#!/usr/bin/env bash
# `make test`: start the stack the tests need, run pytest, stop what this run started.
# Exits non-zero on any failure, including pytest's "no tests ran" (exit 5).
set -uo pipefail
cd "$(dirname "$0")/.."
VORA=.venv/bin/vora

was_running=0
.venv/bin/python -c "
import sys; from vora import devstack; from vora.config import load_settings
sys.exit(0 if devstack.supervisor_running(load_settings()) else 1)" && was_running=1

cleanup() {
  if [ "$was_running" -eq 0 ]; then $VORA dev down || true; fi
}
trap cleanup EXIT

$VORA dev up || { echo "make test: the stack did not come up; see .vora/logs"; exit 1; }
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "make test: pytest collected no tests; that is a failure"
  exit 1
fi
exit "$status"
