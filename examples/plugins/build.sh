#!/usr/bin/env bash
# Builds the example plugins to WebAssembly:
#   <target>/wasm32-unknown-unknown/release/{pii_redactor,keyword_boost,tagger}.wasm
# where <target> is $CARGO_TARGET_DIR, or the repository's target/ directory.
# Works from any directory. When the wasm32-unknown-unknown target is missing and cannot be
# installed, it says so for each plugin and exits 0 (nothing to build, not a failure).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
plugins=(pii_redactor keyword_boost tagger)
triple=wasm32-unknown-unknown

skip() {
    local reason="$1" name
    for name in "${plugins[@]}"; do
        echo "SKIPPED $name.wasm: the $triple target could not be installed ($reason)"
    done
    exit 0
}

if ! command -v cargo >/dev/null 2>&1; then
    skip "cargo not found"
fi
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
        echo "installing the $triple target with rustup..." >&2
        if ! out="$(rustup target add "$triple" 2>&1)"; then
            skip "rustup target add failed: $(printf '%s' "$out" | tail -n 1)"
        fi
    fi
else
    # Without rustup, the toolchain may still ship the target's standard library.
    sysroot="$(rustc --print sysroot 2>/dev/null || true)"
    if [ -z "$sysroot" ] || [ ! -d "$sysroot/lib/rustlib/$triple" ]; then
        skip "rustup not found and the toolchain has no $triple standard library"
    fi
fi

start=$SECONDS
CARGO_TARGET_DIR="$target_dir" cargo build --release --target "$triple" \
    --manifest-path "$here/Cargo.toml"
echo "built in $((SECONDS - start)) s:"

for name in "${plugins[@]}"; do
    wasm="$target_dir/$triple/release/$name.wasm"
    if [ ! -f "$wasm" ]; then
        echo "error: $wasm was not produced" >&2
        exit 1
    fi
    echo "  $wasm  $(wc -c <"$wasm" | tr -d ' ') bytes"
done
