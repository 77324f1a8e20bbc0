#!/usr/bin/env bash
# The Node package's tests, runnable from anywhere: npm ci, the addon build (cargo, dev
# profile, the workspace's target directory), tsc on the declarations, node --test, and the
# package installed into scratch projects — the folder (`npm install <repo>/node`) and an
# `npm pack` tarball built from the Rust sources it carries — where the TypeScript
# declarations are checked again and examples/node/quickstart.mjs runs.
# Needs node/npm and cargo (and Python's pip once, for the model: tests/ensure_model.sh).
set -euo pipefail
NODE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$NODE_DIR/.." && pwd)"
start=$(date +%s)
cd "$NODE_DIR"

bash "$REPO/tests/ensure_model.sh"

echo "== npm ci (its install script builds the addon when there is none)"
npm ci --no-audit --no-fund

echo "== npm run build (cargo build -p agent-mem-node --features plugins,postgres, dev profile)"
npm run --silent build

echo "== tsc --strict --noEmit on test/types.ts"
npx --no-install tsc -p test/tsconfig.json

echo "== node --test"
# The timing tests alone, after the others: node --test runs files side by side on bigger
# machines.
others=()
for f in test/*.test.js; do [[ $f == *concurrency* ]] || others+=("$f"); done
node --test "${others[@]}"
node --test test/concurrency.test.js

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tsc="$NODE_DIR/node_modules/.bin/tsc"

# A project that depends on agent_mem and approves its install script (npm 11 asks).
new_project() {
  mkdir -p "$1"
  printf '{"name": "scratch", "version": "1.0.0", "private": true, "allowScripts": {"%s": true}}\n' \
    "$2" >"$1/package.json"
}

# The package as a user's code sees it: CommonJS, ES module and TypeScript imports.
smoke() {
  cat >"$1/smoke.mjs" <<'EOF'
import { Memory, NotFoundError } from 'agent_mem';
import cjs from 'agent_mem';
const m = await Memory.open(':memory:', { embedder: { provider: 'hashing', dimensions: 64 } });
const { id } = await m.add('installed and working', { userId: 'u' });
const hits = await m.search('working', { mode: 'keyword', userId: 'u' });
if (hits[0]?.id !== id || cjs.Memory !== Memory) throw new Error('unexpected result');
await m.get('00000000-0000-0000-0000-000000000000').then(
  () => { throw new Error('no error'); },
  (e) => { if (!(e instanceof NotFoundError) || e.code !== 'AM_NOT_FOUND') throw e; },
);
await m.close();
console.log('smoke test passed');
EOF
  cat >"$1/smoke.ts" <<'EOF'
import { Memory, type SearchHit } from 'agent_mem';
export async function top(query: string): Promise<SearchHit | undefined> {
  const m = await Memory.open(':memory:');
  const [hit] = await m.search(query, { userId: 'u', limit: 1 });
  await m.close();
  return hit;
}
EOF
  (cd "$1" && node smoke.mjs \
    && "$tsc" --strict --noEmit --module node16 --moduleResolution node16 --target es2022 \
      smoke.ts)
}

echo "== npm install $NODE_DIR (the folder) into a scratch project"
new_project "$scratch/folder" "file:$NODE_DIR"
(cd "$scratch/folder" && npm install --no-audit --no-fund "$NODE_DIR")
smoke "$scratch/folder"

echo "== npm pack, and the tarball installed into a scratch project"
tarball=$(npm pack --silent --pack-destination "$scratch" | tail -n 1)
tarball="$scratch/$tarball"
if tar -tzf "$tarball" | grep -q '\.node$'; then
  echo "the tarball holds a prebuilt addon; it must build from its sources" >&2
  exit 1
fi
new_project "$scratch/tarball" "file:$tarball"
# The install builds the addon from the tarball's rust/ copy. The repository's target
# directory serves it: the dependencies are compiled already, and the copy's own artifacts
# have hashes of their own (see scripts/pack-sources.js).
(cd "$scratch/tarball" \
  && CARGO_TARGET_DIR="$REPO/target" npm install --no-audit --no-fund --foreground-scripts "$tarball")
test -f "$scratch/tarball/node_modules/agent_mem/agent_mem.$(node -p 'process.platform + "-" + process.arch').node"
smoke "$scratch/tarball"

echo "== examples/node/quickstart.mjs (in the tarball's project)"
cp "$REPO/examples/node/quickstart.mjs" "$scratch/tarball/"
(cd "$scratch/tarball" && node quickstart.mjs "$scratch/quickstart.db") | tee "$scratch/out.txt"
# Each question must have found its answer first.
first_hit() { grep -F -x -A1 "$1" "$scratch/out.txt" | sed -n 2p; }
first_hit "[alice] What food should Alice avoid?" | grep -q "peanuts"
first_hit "[alice] 咖啡" | grep -q "拿铁"
first_hit "[bob] what does bob do for a living" | grep -q "site reliability engineer"
first_hit "[bob] San Fransisco" | grep -q "San Francisco"

echo "node package: all tests passed in $(($(date +%s) - start)) s"
