#!/usr/bin/env bash
# Every test: formatting, lints, the Rust suites (unit, integration, conformance, doc tests)
# and the quickstart example. One build profile and one target dir serve all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash tests/ensure_model.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace

echo "== quickstart example"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash examples/quickstart.sh "$tmp/quickstart.db" | tee "$tmp/out.txt"
# Each question must have found its answer first.
grep -A1 "What food should Alice avoid" "$tmp/out.txt" | grep -q "peanuts"
grep -A1 "咖啡" "$tmp/out.txt" | tail -1 | grep -q "拿铁"
grep -A1 "San Fransisco" "$tmp/out.txt" | grep -q "San Francisco"

echo "all tests passed in $(( $(date +%s) - start )) s"
