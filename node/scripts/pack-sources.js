#!/usr/bin/env node
'use strict';
// `npm pack` / `npm publish` helper: copies the Rust sources the addon is built from into
// rust/ (prepack), so that the tarball installs on a machine with cargo and nothing else;
// `--clean` removes the copy again (postpack).
//
// rust/ is a two-member workspace with the repository's workspace settings, profiles and
// Cargo.lock: agent-mem/ (the core; its manifest loses the examples, tests, benches and
// dev-dependencies, whose files are not shipped) and agent-mem-node/ (the addon). The folder
// names differ from the repository's core/ and bindings/node/ on purpose: cargo derives its
// artifact hashes from paths relative to the workspace, so a build of this copy in the
// repository's target directory (as test/run.sh does) never overwrites the repository's own
// build of the core. The addon's library is renamed too (agent_mem_node_npm): cargo names a
// cdylib without a hash, and the two builds would otherwise write the same file.

const fs = require('node:fs');
const path = require('node:path');

const PKG = path.resolve(__dirname, '..');
const REPO = path.resolve(PKG, '..');
const OUT = path.join(PKG, 'rust');

function copy(from, to, transform) {
  const source = path.join(REPO, from);
  const dest = path.join(OUT, to);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  if (transform) fs.writeFileSync(dest, transform(fs.readFileSync(source, 'utf8')));
  else fs.cpSync(source, dest, { recursive: true });
}

function replaceOnce(text, pattern, replacement, what) {
  if (!pattern.test(text)) throw new Error(`no ${what} in a Cargo.toml`);
  return text.replace(pattern, replacement);
}

/** The workspace manifest with the two members, under their names in rust/. */
function workspaceManifest(text) {
  text = replaceOnce(text, /^members\s*=\s*\[[^\]]*\]/m, 'members = ["agent-mem", "agent-mem-node"]', '`members = [...]`');
  return replaceOnce(text, /^(agent-mem\s*=\s*\{\s*path\s*=\s*)"core"/m, '$1"agent-mem"', 'agent-mem = { path = "core" }');
}

/** The addon's manifest, its library renamed. */
function addonManifest(text) {
  return replaceOnce(text, /^name = "agent_mem_node"$/m, 'name = "agent_mem_node_npm"', '[lib] name = "agent_mem_node"');
}

/** A package manifest without the sections whose files are not shipped. */
function libraryManifest(text) {
  const dropped = /^\[\[(example|test|bench|bin)\]\]$|^\[(target\..+\.)?dev-dependencies\]$/;
  const out = [];
  let skipping = false;
  for (const line of text.split('\n')) {
    const header = line.trim();
    if (header.startsWith('[')) skipping = dropped.test(header);
    if (!skipping) out.push(line);
  }
  return out.join('\n');
}

function main() {
  const inCheckout = fs.existsSync(path.join(REPO, 'bindings', 'node', 'Cargo.toml'));
  if (process.argv.includes('--clean')) {
    // Outside a checkout rust/ is the only copy of the sources: keep it.
    if (inCheckout) fs.rmSync(OUT, { recursive: true, force: true });
    return;
  }
  if (!inCheckout) {
    // Packing an already packed copy: rust/ is there and is what ships.
    if (fs.existsSync(path.join(OUT, 'Cargo.toml'))) return;
    throw new Error(`no Rust workspace at ${REPO} and no rust/ copy to ship`);
  }
  fs.rmSync(OUT, { recursive: true, force: true });
  copy('Cargo.toml', 'Cargo.toml', workspaceManifest);
  copy('Cargo.lock', 'Cargo.lock');
  // The core's crate docs include the README (../../README.md from src/lib.rs).
  copy('README.md', 'README.md');
  copy('core/Cargo.toml', 'agent-mem/Cargo.toml', libraryManifest);
  copy('core/src', 'agent-mem/src');
  if (fs.existsSync(path.join(REPO, 'core', 'build.rs'))) copy('core/build.rs', 'agent-mem/build.rs');
  copy('bindings/node/Cargo.toml', 'agent-mem-node/Cargo.toml', addonManifest);
  copy('bindings/node/build.rs', 'agent-mem-node/build.rs');
  copy('bindings/node/src', 'agent-mem-node/src');
}

main();
