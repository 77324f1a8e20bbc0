#!/usr/bin/env bash
# The Python package's whole check: a virtualenv (target/python-venv) with pinned tools, the
# default model, `pip install ./python` built with the workspace's dev profile and target dir
# (no second, release build), ruff, mypy --strict and stubtest on the stubs, pytest, and the
# examples. Needs only python3 (with venv or pip) and cargo. Runs from anywhere. The
# PostgreSQL tests run when AGENTMEM_TEST_PG_URL names a server (tests/postgres.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
start=$(date +%s)
VENV="$ROOT/target/python-venv"
# Tool caches live in target/, not in the source tree.
export RUFF_CACHE_DIR="$ROOT/target/ruff-cache" PYTHONDONTWRITEBYTECODE=1
PY="$VENV/bin/python"
# psycopg makes a schema per test on the PostgreSQL test server (test_postgres.py).
TOOLS=(maturin==1.16.0 pytest==9.2.0 ruff==0.17.6 mypy==2.4.1 "psycopg[binary]==3.3.9")

step() { echo "== $*"; }

if [ ! -x "$PY" ]; then
  step "virtualenv $VENV"
  mkdir -p "$ROOT/target"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian without python3-venv: a venv without pip, filled by the system's pip.
    rm -rf "$VENV"
    python3 -m venv --without-pip "$VENV"
    python3 -m pip --python "$PY" install --quiet pip \
      || { echo "python3 can make no virtualenv: install python3-venv (or pip)" >&2; exit 1; }
  fi
fi

step "tools: ${TOOLS[*]}"
"$PY" -m pip install --quiet --disable-pip-version-check "${TOOLS[@]}"

step "default model (into the venv; no torch)"
AGENTMEM_PYTHON="$PY" bash tests/ensure_model.sh

step "pip install ./python (cargo dev profile, target dir $ROOT/target)"
t=$(date +%s)
MATURIN_PEP517_ARGS="--profile dev" CARGO_TARGET_DIR="$ROOT/target" \
  "$PY" -m pip install --quiet --disable-pip-version-check ./python
echo "   installed in $(( $(date +%s) - t )) s"

step "ruff"
# tests/fake_llm.py (the fake LLM provider shared with the C and Node suites) is checked here.
"$VENV/bin/ruff" check --config python/pyproject.toml python examples/python tests/fake_llm.py
"$VENV/bin/ruff" format --check --config python/pyproject.toml python examples/python \
  tests/fake_llm.py

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step "mypy --strict (package, usage file) and stubtest (the native module's stubs)"
# From a directory without the source tree, so that the installed package is what is checked.
(cd "$tmp" && "$PY" -m mypy --strict --cache-dir "$ROOT/target/mypy-cache" \
  "$ROOT/python/agent_mem" "$ROOT/python/tests/typing_usage.py" "$ROOT/tests/fake_llm.py")
(cd "$tmp" && "$PY" -m mypy.stubtest --mypy-config-file "$ROOT/python/pyproject.toml" \
  agent_mem._native)

step "pytest"
# -rs lists what was skipped and why (test_postgres.py without a server: run this script
# through `bash tests/postgres.sh run -- bash python/tests/run.sh` to include it).
"$PY" -m pytest -q -rs -p no:cacheprovider python/tests

step "examples"
"$PY" examples/python/quickstart.py "$tmp/quickstart.db" | tee "$tmp/quickstart.txt"
first_hit() { grep -F -x -A1 "$1" "$tmp/quickstart.txt" | sed -n 2p; }
first_hit "[alice] What food should Alice avoid?" | grep -q "peanuts"
first_hit "[alice] 咖啡" | grep -q "拿铁"
first_hit "[bob] what does bob do for a living" | grep -q "site reliability engineer"
first_hit "[bob] San Fransisco" | grep -q "San Francisco"
grep -q "\[bob\] San Fransisco -> Bob works as a site reliability engineer" "$tmp/quickstart.txt"

AGENTMEM_MEM0_DIR="$tmp/mem0" "$PY" -W "ignore::UserWarning" examples/python/mem0_dropin.py \
  | tee "$tmp/mem0.txt"
grep -q "^chat: You told me: I'm a vegetarian and I'm allergic to nuts." "$tmp/mem0.txt"
grep -A1 "^search:" "$tmp/mem0.txt" | grep -q "I love playing tennis on weekends."
grep -q "('UPDATE', 'I love playing tennis on Sundays.')" "$tmp/mem0.txt"
test -f "$tmp/mem0/mem0.db"

echo "python: all checks passed in $(( $(date +%s) - start )) s"
