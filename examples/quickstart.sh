#!/usr/bin/env bash
# The main job: a store file, memories for two users, searches printed with scores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/ensure_model.sh
# AGENTMEM_QUICKSTART_FEATURES: cargo features of the core for this build (the test command
# passes the ones of a build it has made already, so that the core is not compiled again).
cargo run --quiet -p agent-mem ${AGENTMEM_QUICKSTART_FEATURES:+--features "$AGENTMEM_QUICKSTART_FEATURES"} \
  --example quickstart -- "${1:-quickstart.db}"
