#!/usr/bin/env node
'use strict';
// Builds the native addon from source with cargo and puts it beside index.js as
// agent_mem.<platform>-<arch>.node.
//
//   node scripts/build.js [--release] [--if-missing]
//
// --release       the release profile (also AGENTMEM_BUILD_PROFILE=release); the default is
//                 cargo's dev profile, which in this workspace already optimises the
//                 dependencies (the embedding model runs at full speed) and builds faster.
// --if-missing    do nothing when the addon is already there (the npm `install` script).
//
// The sources are the Rust workspace around this package (a checkout of the repository:
// ../Cargo.toml), or else the copy the npm tarball carries (rust/, made by pack-sources.js).
// Cargo builds in its usual target directory (CARGO_TARGET_DIR, or the workspace's target/),
// so in a checkout the core is compiled once for every surface. The addon is always built with
// the `plugins` feature (WASM plugins through Extism) and the `postgres` feature (a
// `postgres://` URL in place of the path opens a store on a PostgreSQL server).

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

const PKG = path.resolve(__dirname, '..');
const ADDON = path.join(PKG, `agent_mem.${process.platform}-${process.arch}.node`);
const CRATE = 'agent-mem-node';

function fail(message) {
  console.error(`agent_mem: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const args = { release: process.env.AGENTMEM_BUILD_PROFILE === 'release', ifMissing: false };
  const profile = process.env.AGENTMEM_BUILD_PROFILE;
  if (profile !== undefined && profile !== '' && profile !== 'release' && profile !== 'dev') {
    fail(`AGENTMEM_BUILD_PROFILE must be "dev" or "release", not ${JSON.stringify(profile)}`);
  }
  for (const arg of argv) {
    if (arg === '--release') args.release = true;
    else if (arg === '--if-missing') args.ifMissing = true;
    else fail(`unknown argument ${arg} (expected --release, --if-missing)`);
  }
  return args;
}

/** The workspace manifest: the repository checkout first, the bundled copy otherwise. */
function findManifest() {
  const checkout = path.join(PKG, '..');
  if (fs.existsSync(path.join(checkout, 'bindings', 'node', 'Cargo.toml'))) {
    return path.join(checkout, 'Cargo.toml');
  }
  const bundled = path.join(PKG, 'rust', 'Cargo.toml');
  if (fs.existsSync(bundled)) {
    freshen(path.dirname(bundled));
    return bundled;
  }
  return fail(
    `no Rust sources to build the addon from (looked for ${checkout}/bindings/node and ${bundled})`,
  );
}

/**
 * Dates the bundled sources now. Cargo decides freshness by modification times, and a package
 * manager may extract files with old ones: in a target directory shared with an earlier build
 * (CARGO_TARGET_DIR), older sources would pass for already built.
 */
function freshen(dir) {
  const now = new Date();
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'target') freshen(file);
    } else if (entry.isFile()) {
      fs.utimesSync(file, now, now);
    }
  }
}

/**
 * The package name in a cargo package id: `path+file:///src/x#name@1.0.0`, or
 * `path+file:///src/name#1.0.0` when the folder has the package's name.
 */
function packageName(id) {
  const [source, fragment = ''] = String(id).split('#');
  return fragment.includes('@') ? fragment.slice(0, fragment.lastIndexOf('@')) : source.split('/').pop();
}

/** Runs cargo; resolves with the path of the built library. */
function cargoBuild(manifest, release) {
  const cargo = process.env.CARGO || 'cargo';
  const args = [
    'build',
    '-p',
    CRATE,
    // WASM plugins (registerPlugin, callPlugin, hooks) and PostgreSQL stores are part of the
    // package.
    '--features',
    'plugins,postgres',
    '--manifest-path',
    manifest,
    '--message-format=json-render-diagnostics',
  ];
  if (release) args.push('--release');
  console.error(`agent_mem: ${cargo} ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    // stdout: one JSON message a line (the artifacts); stderr: cargo's progress and errors.
    const child = spawn(cargo, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let library = null;
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      // Found by package (the library is named differently in the tarball's copy).
      if (
        msg.reason === 'compiler-artifact' &&
        packageName(msg.package_id) === CRATE &&
        msg.target.kind.includes('cdylib')
      ) {
        library = msg.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) || library;
      }
    });
    child.on('error', (e) => {
      if (e.code === 'ENOENT') {
        reject(
          new Error(
            `cannot run ${cargo}: the addon is built from source and needs a Rust toolchain ` +
              '(https://rustup.rs)',
          ),
        );
      } else reject(e);
    });
    child.on('close', (code, signal) => {
      if (code !== 0) reject(new Error(`cargo build failed (${signal || `exit code ${code}`})`));
      else if (!library) reject(new Error(`cargo built no library of ${CRATE}`));
      else resolve(library);
    });
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.ifMissing && fs.existsSync(ADDON)) {
    console.error(`agent_mem: ${path.basename(ADDON)} is there; not rebuilding`);
    return;
  }
  const library = await cargoBuild(findManifest(), args.release);
  // Copy, then rename: a process that has the old addon loaded keeps its file intact.
  const temp = `${ADDON}.${process.pid}.tmp`;
  fs.copyFileSync(library, temp);
  fs.renameSync(temp, ADDON);
  console.error(`agent_mem: ${library} -> ${ADDON}`);
}

main().catch((e) => fail(e.message));
