#!/usr/bin/env bash
# The main job: a store file, memories for two users, searches printed with scores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/ensure_model.sh
cargo run --quiet -p agent-mem --example quickstart -- "${1:-quickstart.db}"
