#!/usr/bin/env bash
# On-demand benchmark (not run by CI): mem0 vs agent_mem, `add` with inference against one
# local fake OpenAI server that answers at once. See compare.py for what is measured.
#
#   bash benches/mem0_compare/run.sh [compare.py options, e.g. --adds 50]
#
# Virtualenv: target/mem0-bench-venv (reused). It holds mem0ai 1.0.11 (the last release with
# the classic two-call pipeline) and its dependencies (openai SDK, qdrant-client used in local
# on-disk `path` mode, no server), agent_mem built from ./python like python/tests/run.sh does,
# and mem0ai 2.2.1 (single "additive extraction" call) installed --no-deps beside it in
# $VENV/mem0-2.2.1, put on PYTHONPATH only for its own run. agent_mem is built with the dev
# profile (workspace crates unoptimised, dependencies at opt-level 3) unless
# MEM0_BENCH_PROFILE=release (a separate, longer build: ~4 min on 2 cores).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="$ROOT/target/mem0-bench-venv"
PY="$VENV/bin/python"
MEM0_CLASSIC=1.0.11
MEM0_V2=2.2.1
export PYTHONDONTWRITEBYTECODE=1 MEM0_TELEMETRY=False
pip_install() { "$PY" -m pip install --quiet --disable-pip-version-check "$@"; }

t0=$(date +%s)
if [ ! -x "$PY" ]; then
  echo "== virtualenv $VENV"
  mkdir -p "$ROOT/target"
  python3 -m venv "$VENV"
fi

echo "== mem0ai==$MEM0_CLASSIC (+ what $MEM0_V2 needs), openai, qdrant-client"
t=$(date +%s)
# Versions that satisfy both mem0 releases (2.2.1 needs posthog>=7.14, qdrant-client>=1.12,
# httpx>=0.28), pinned to the ones measured.
pip_install "mem0ai==$MEM0_CLASSIC" openai==3.57.0 qdrant-client==1.20.0 posthog==7.91.1 \
  httpx==0.28.1
if [ ! -d "$VENV/mem0-$MEM0_V2/mem0" ]; then
  pip_install --no-deps --target "$VENV/mem0-$MEM0_V2" "mem0ai==$MEM0_V2"
fi
echo "   $(( $(date +%s) - t )) s"

echo "== default embedding model, then pip install ./python (${MEM0_BENCH_PROFILE:-dev} profile, target dir $ROOT/target)"
t=$(date +%s)
AGENTMEM_PYTHON="$PY" bash tests/ensure_model.sh
MATURIN_PEP517_ARGS="--profile ${MEM0_BENCH_PROFILE:-dev}" CARGO_TARGET_DIR="$ROOT/target" pip_install ./python
echo "   $(( $(date +%s) - t )) s (setup total $(( $(date +%s) - t0 )) s)"

exec "$PY" "$ROOT/benches/mem0_compare/compare.py" --mem0-v2-path "$VENV/mem0-$MEM0_V2" "$@"
