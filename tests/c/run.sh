#!/usr/bin/env bash
# The C surface: builds libagentmem, then
#   - tests/c/test_agentmem.c and the conformance cases (tests/c/conformance.c) under valgrind
#     (the programs under valgrind run side by side, one per core),
#   - tests/c/test_infer.c under valgrind, against tests/fake_llm.py (a local HTTP server
#     playing the model with the replies of tests/c/infer_script.json; always stopped),
#   - tests/c/test_chat.c (am_memory_chat, streamed and not) under valgrind, against a second
#     tests/fake_llm.py with the replies of tests/c/chat_script.json (always stopped),
#   - tests/c/test_plugins.c (WASM plugins, run by wasmtime) natively, then under valgrind
#     with tests/c/wasmtime.supp (one report from inside wasmtime's module parser),
#   - tests/c/test_postgres.c (stores on a PostgreSQL server) under valgrind: against the
#     server of tests/postgres.sh when AGENTMEM_TEST_PG_URL is set (run this script through
#     `bash tests/postgres.sh run -- bash tests/c/run.sh`); without it the program says
#     SKIPPED, or fails when AGENTMEM_REQUIRE_POSTGRES=1,
#   - the header compiled as C and C++, and a small C++ program run,
#   - `make -C ffi install` into a temporary prefix, and examples/c/quickstart.c built through
#     pkg-config, linked against the shared and the static library, and run.
# Run from anywhere. One cargo profile (dev) serves everything, as in tests/run.sh; the
# library is built with the cargo features "plugins" and "postgres", as `make -C ffi install`
# builds it.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
start=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - start )) s)"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
need_packages=()
[ -f /usr/include/cjson/cJSON.h ] || need_packages+=(libcjson-dev)
command -v valgrind >/dev/null || need_packages+=(valgrind)
command -v pkg-config >/dev/null || need_packages+=(pkg-config)
if [ ${#need_packages[@]} -gt 0 ]; then
  step "installing ${need_packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}"
fi
# The quickstart embeds with the real model.
bash tests/ensure_model.sh

step "cargo build -p agent-mem-ffi --features plugins,postgres"
cargo build -p agent-mem-ffi --features plugins,postgres
lib=$root/target/debug

tmp=$(mktemp -d)
declare -A job_name=()
fake_pids=()
stop_fakes() {
  local pid
  for pid in "${fake_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  fake_pids=()
}
cleanup() {
  # Programs still running when a step failed (see job below).
  for pid in "${!job_name[@]}"; do kill "$pid" 2>/dev/null || true; done
  stop_fakes
  rm -rf "$tmp"
}
trap cleanup EXIT
cflags=(-std=c99 -Wall -Wextra -Werror -pedantic -pthread -g -Iinclude)
link=(-L"$lib" -Wl,-rpath,"$lib" -lagentmem)

step "header as C99 and as C++11"
cc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only -x c include/agentmem.h
c++ -x c++ -std=c++11 -fsyntax-only -Wall -Wextra -Werror include/agentmem.h
c++ -std=c++11 -Wall -Wextra -Werror -Iinclude tests/c/cpp_smoke.cpp -o "$tmp/cpp_smoke" "${link[@]}"
"$tmp/cpp_smoke"

step "compile the C tests"
cc "${cflags[@]}" tests/c/test_agentmem.c -o "$tmp/test_agentmem" "${link[@]}" -lcjson
cc "${cflags[@]}" tests/c/conformance.c -o "$tmp/conformance" "${link[@]}" -lcjson
cc "${cflags[@]}" tests/c/test_infer.c -o "$tmp/test_infer" "${link[@]}" -lcjson
cc "${cflags[@]}" tests/c/test_chat.c -o "$tmp/test_chat" "${link[@]}" -lcjson
cc "${cflags[@]}" tests/c/test_plugins.c -o "$tmp/test_plugins" "${link[@]}" -lcjson
cc "${cflags[@]}" tests/c/test_postgres.c -o "$tmp/test_postgres" "${link[@]}" -lcjson
cc "${cflags[@]}" tests/c/test_dispatch.c -o "$tmp/test_dispatch" "${link[@]}" -lcjson

# Leaks that count: definite and indirect. valgrind also reports one "possibly lost" block
# (2 KiB): the stop-word set of agent_mem::text, a process-wide static built once; hashbrown
# keeps only a pointer into the middle of its allocation, so valgrind cannot prove it
# reachable. It is not a leak and it is not counted as one here, so no suppression file is
# needed (test_plugins has one, for a report that is not a leak: see there); a real leak (a
# string, error or handle not freed) is "definitely lost" and fails.
valgrind=(valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect
  --errors-for-leak-kinds=definite,indirect --error-exitcode=1)

# valgrind runs a program on one core, so the programs under valgrind run side by side, as
# many at once as there are cores (AGENTMEM_TEST_JOBS to change that), longest first; each
# one's output is printed when it ends. They share nothing: each has its own temp files and
# PostgreSQL schema.
max_jobs=${AGENTMEM_TEST_JOBS:-$(nproc)}
declare -A job_name=() job_start=() job_log=()
failed=()
reap_one() {
  local pid rc
  wait -n -p pid "${!job_name[@]}" && rc=0 || rc=$?
  echo "== ${job_name[$pid]}: exit $rc after $(( $(date +%s) - job_start[$pid] )) s"
  cat "${job_log[$pid]}"
  [ "$rc" = 0 ] || failed+=("${job_name[$pid]}")
  unset "job_name[$pid]" "job_start[$pid]" "job_log[$pid]"
}
job() {
  local name=$1 log
  shift
  while [ ${#job_name[@]} -ge "$max_jobs" ]; do reap_one; done
  step "started: $name"
  log=$(mktemp "$tmp/job-XXXXXX.log")
  "$@" >"$log" 2>&1 &
  job_name[$!]=$name
  job_start[$!]=$(date +%s)
  job_log[$!]=$log
}
wait_jobs() {
  while [ ${#job_name[@]} -gt 0 ]; do reap_one; done
  if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
  fi
}

# The example plugin is built by examples/plugins/build.sh when the wasm32 target is
# installed; test_plugins skips its test, saying so, when the file is missing.
pii_wasm=${AGENTMEM_EXAMPLE_PLUGINS:-$root/target/wasm32-unknown-unknown/release}/pii_redactor.wasm
step "test_plugins natively"
# Natively first: there wasmtime's own signal handlers catch the traps (valgrind emulates
# signal delivery), and the timeout runs at full speed.
"$tmp/test_plugins" "$pii_wasm"

# One fake model server per program that talks to one, each with its own script and log
# ($tmp/NAME.port, $tmp/NAME.log): the programs run side by side, and each counts the
# requests its server logged.
start_fake() {
  local name=$1 script=$2 pid
  python3 tests/fake_llm.py --script "$script" --port-file "$tmp/$name.port" \
    --log "$tmp/$name.log" &
  pid=$!
  fake_pids+=("$pid")
  for _ in $(seq 100); do
    [ -s "$tmp/$name.port" ] && return 0
    kill -0 "$pid" 2>/dev/null || { echo "tests/fake_llm.py ($name) exited early"; exit 1; }
    sleep 0.1
  done
  echo "tests/fake_llm.py ($name) did not start"
  exit 1
}
start_fake infer tests/c/infer_script.json
start_fake chat tests/c/chat_script.json

# valgrind runs wasmtime's generated code (traps, timeouts and all), but reports one
# "conditional jump depends on uninitialised value" inside wasmtime's module parser, a
# dependency built optimised; tests/c/wasmtime.supp says why and suppresses that frame pair
# only, for this program only. Leaks are counted as for the others.
job "test_plugins under valgrind" \
  "${valgrind[@]}" --suppressions=tests/c/wasmtime.supp "$tmp/test_plugins" "$pii_wasm"
# It registers a plugin too (tests/dispatch/noop.wat): the same suppression.
job "every operation through am_memory_call under valgrind" \
  "${valgrind[@]}" --suppressions=tests/c/wasmtime.supp "$tmp/test_dispatch" tests/dispatch
job "conformance cases through the C ABI under valgrind" \
  "${valgrind[@]}" "$tmp/conformance" --error-codes tests/error_codes.json tests/conformance
job "test_agentmem under valgrind" "${valgrind[@]}" "$tmp/test_agentmem" tests/error_codes.json
if [ -n "${AGENTMEM_TEST_PG_URL:-}" ]; then pg_server="on the test server"; else pg_server="no server"; fi
job "test_postgres under valgrind ($pg_server)" "${valgrind[@]}" "$tmp/test_postgres"
# Against the tests/fake_llm.py servers started above.
job "test_infer under valgrind, against tests/fake_llm.py" \
  "${valgrind[@]}" "$tmp/test_infer" "http://127.0.0.1:$(cat "$tmp/infer.port")" "$tmp/infer.log" \
  tests/c/infer_script.json
job "test_chat under valgrind, against tests/fake_llm.py" \
  "${valgrind[@]}" "$tmp/test_chat" "http://127.0.0.1:$(cat "$tmp/chat.port")" "$tmp/chat.log" \
  tests/c/chat_script.json
wait_jobs
stop_fakes

step "make -C ffi install into a temporary prefix"
prefix=$tmp/prefix
make -s -C ffi install PREFIX="$prefix"
for f in lib/libagentmem.so lib/libagentmem.a include/agentmem.h lib/pkgconfig/agentmem.pc; do
  [ -f "$prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ "$(pkg-config --modversion agentmem)" = "$(sed -n 's/^#define AGENTMEM_VERSION_STRING "\(.*\)"/\1/p' include/agentmem.h)" ]

step "quickstart, shared library through pkg-config"
# shellcheck disable=SC2046 # pkg-config output is a list of flags
cc -std=c99 -Wall -Wextra -Werror -pedantic examples/c/quickstart.c -o "$tmp/quickstart" \
  $(pkg-config --cflags --libs agentmem)
LD_LIBRARY_PATH=$prefix/lib "$tmp/quickstart" "$tmp/quickstart.db" | tee "$tmp/shared.txt"

step "quickstart, static library (pkg-config --static)"
# -l:libagentmem.a picks the archive although the shared library sits beside it.
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -pedantic examples/c/quickstart.c -o "$tmp/quickstart-static" \
  $(pkg-config --cflags agentmem) \
  $(pkg-config --static --libs agentmem | sed 's/-lagentmem\b/-l:libagentmem.a/')
if ldd "$tmp/quickstart-static" | grep -q libagentmem; then
  echo "quickstart-static still loads libagentmem.so"; exit 1
fi
"$tmp/quickstart-static" "$tmp/quickstart-static.db" | tee "$tmp/static.txt"

# The answer to "what should I cook for dinner?" is Alice's diet, first.
for out in "$tmp/shared.txt" "$tmp/static.txt"; do
  first=$(grep -F -A1 "[alice] what should I cook for dinner?" "$out" | sed -n 2p)
  if ! grep -Eq "vegetarian|nuts" <<<"$first"; then
    echo "$out: the first hit is not Alice's diet: $first"; exit 1
  fi
done
make -s -C ffi uninstall PREFIX="$prefix"

echo "C tests passed in $(( $(date +%s) - start )) s"
