#!/usr/bin/env bash
# Runs every cargo fuzz target for SECONDS each (default 20: a smoke run; give more to hunt):
#
#   bash fuzz/run.sh [SECONDS]
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz (installed
# here from crates.io when missing). A crash stops the run; its input is kept under
# fuzz/artifacts/<target>/ for `cargo +nightly fuzz run <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}
cargo +nightly --version >/dev/null 2>&1 || {
  echo "a nightly toolchain is needed: rustup toolchain install nightly" >&2
  exit 1
}
cargo fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz
# The store's embedder in the targets is the hashing one: no model is needed.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo fuzz list); do
  echo "== fuzz $target for $seconds s"
  mkdir -p "corpus/$target"
  status=0
  cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" \
    -max_len=4096 -print_final_stats=1 >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz target $target failed (exit $status)" >&2
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|INFO: Done)' "$log" || true
done
