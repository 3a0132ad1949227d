#!/usr/bin/env bash
# `make demo`: the main job. Until the End-to-end issue lands it brings the stack up
# and says what runs where.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/vora dev up
echo
echo "The stack is up. The upload -> transcode -> play walkthrough arrives with the End-to-end issue."
echo "Stop it with: make down"
