#!/usr/bin/env bash
# `make demo`: the main job (vora/demo.py). VIDEO=path uploads your own file;
# VORA_DEMO_EXIT=1 exits after printing the URLs instead of waiting for Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m vora.demo "$@"
