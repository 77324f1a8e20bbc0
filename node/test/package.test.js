'use strict';
// The package itself: versions agree, and index.d.ts declares exactly what index.js exports.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const PKG = path.join(__dirname, '..');
const pkg = require('../package.json');
const am = require('..');

test('the package and the addon have the same version', () => {
  assert.equal(am.addonVersion, pkg.version);
});

test('index.d.ts declares what index.js exports', () => {
  const dts = fs.readFileSync(path.join(PKG, pkg.types), 'utf8');
  const declared = [...dts.matchAll(/^export declare (?:class|function|const) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual([...declared].sort(), Object.keys(am).sort());
});

test('main, types and the build script are in the published files', () => {
  for (const file of [pkg.main, pkg.types, 'scripts/build.js']) {
    assert.ok(fs.existsSync(path.join(PKG, file)), file);
    assert.ok(pkg.files.includes(file), `${file} is not in "files"`);
  }
  assert.ok(pkg.files.includes('rust/'), 'the Rust sources ship for the install-time build');
  assert.ok(!pkg.files.some((f) => f.endsWith('.node')), 'no prebuilt addon in the tarball');
  assert.equal(pkg.scripts.install, 'node scripts/build.js --if-missing');
});
