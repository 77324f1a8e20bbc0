'use strict';
// The one dispatch from Node: every operation the addon lists (`operations()`) is called
// through the addon's generic entry, `NativeMemory.call`, with the requests of
// tests/dispatch/calls.json (the cases every language runs), in order, and each result is
// checked; bad calls reject with AM_INVALID_INPUT naming what is wrong, and change nothing.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

require('..'); // a missing addon is reported by the package itself
const native = require(path.join(__dirname, '..', `agent_mem.${process.platform}-${process.arch}.node`));

const CASES_DIR = path.join(__dirname, '..', '..', 'tests', 'dispatch');
const CASES = JSON.parse(fs.readFileSync(path.join(CASES_DIR, 'calls.json'), 'utf8'));
const ERROR_CODES = JSON.parse(fs.readFileSync(path.join(CASES_DIR, '..', 'error_codes.json'), 'utf8'));

/** `"$id"`, `"$change"`, `"$entity"`, `"$object"` and `"$plugin"` replaced, everywhere in
 * `value` (`names`: the first added id, the last change id and the subject and object
 * entities of the last relation a result held). */
function resolve(value, names) {
  if (['$id', '$change', '$entity', '$object'].includes(value)) return names[value];
  if (value === '$plugin') return path.join(CASES_DIR, 'noop.wat');
  if (Array.isArray(value)) return value.map((v) => resolve(v, names));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, names)]));
  }
  return value;
}

/** calls.json's rule: an object's keys, a list item by item, a scalar equal. */
function matches(expected, actual) {
  if (Array.isArray(expected)) {
    return (
      Array.isArray(actual) &&
      expected.length === actual.length &&
      expected.every((e, i) => matches(e, actual[i]))
    );
  }
  if (expected !== null && typeof expected === 'object') {
    return (
      actual !== null &&
      typeof actual === 'object' &&
      Object.entries(expected).every(([k, v]) => k in actual && matches(v, actual[k]))
    );
  }
  return expected === actual;
}

async function call(m, op, request, ...embeddings) {
  return JSON.parse(await m.call(op, JSON.stringify(request), ...embeddings));
}

const open = () => native.open(null, JSON.stringify(CASES.options));

test('the cases call every operation the addon lists', () => {
  const listed = native.operations();
  assert.equal(new Set(listed).size, listed.length);
  assert.deepEqual(new Set(CASES.calls.map((c) => c[0])), new Set(listed));
});

test('every operation runs through the generic entry', async () => {
  const m = await open();
  const names = { $id: '', $change: '', $entity: '', $object: '' };
  for (const [op, rawRequest, rawExpected] of CASES.calls) {
    const request = resolve(rawRequest, names);
    if (rawExpected && typeof rawExpected === 'object' && '$error' in rawExpected) {
      const row = ERROR_CODES.codes.find((c) => c.name === rawExpected.$error);
      await assert.rejects(call(m, op, request), { code: row.node }, op);
      continue;
    }
    const result = await call(m, op, request);
    if (!names.$id && op === 'add') names.$id = result.id;
    if (typeof result?.change_id === 'string') names.$change = result.change_id;
    if (typeof result?.relation?.subject === 'string') {
      names.$entity = result.relation.subject;
      names.$object = result.relation.object ?? '';
    }
    const expected = resolve(rawExpected, names);
    assert.ok(matches(expected, result), `${op} ${JSON.stringify(request)}: ${JSON.stringify(result)}`);
  }
  await m.close();
});

test('embeddings go natively', async () => {
  const m = await native.open(null, JSON.stringify({ embedder: 'none' }));
  const east = await call(m, 'add', { content: 'east' }, new Float32Array([1, 0]));
  await call(m, 'add_batch', { memories: [{ content: 'north' }] }, undefined, [new Float32Array([0, 1])]);
  const hits = await call(m, 'search', { mode: 'vector', limit: 1 }, new Float32Array([0.9, 0.1]));
  assert.equal(hits[0].id, east.id);
  await assert.rejects(call(m, 'add', { content: 'nan' }, new Float32Array([NaN, 0])), {
    code: 'AM_INVALID_INPUT',
    message: /NaN/,
  });
  await assert.rejects(
    call(m, 'add', { content: 'both' }, new Float32Array([1, 0]), [new Float32Array([1, 0])]),
    { code: 'AM_INVALID_INPUT', message: /not both/ },
  );
  assert.equal(await call(m, 'count', {}), 2);
  await m.close();
});

test('an unknown operation is refused by name, bad JSON too', async () => {
  const m = await open();
  await call(m, 'add', { content: 'kept' });
  for (const op of ['frobnicate', '', 'copy_into', 'plugin_call']) {
    await assert.rejects(m.call(op, '{'), {
      code: 'AM_INVALID_INPUT',
      message: new RegExp(`unknown operation ${JSON.stringify(op)}`),
    });
  }
  for (const op of native.operations()) {
    for (const text of ['', '{', 'nul', '{"content": }']) {
      await assert.rejects(m.call(op, text), { code: 'AM_INVALID_INPUT', message: /not valid JSON/ });
    }
  }
  assert.equal(await call(m, 'count', {}), 1);
  await m.close();
});

test('bad requests change nothing', async () => {
  const m = await open();
  const kept = await call(m, 'add', { content: 'Alice drinks tea', user_id: 'a' });
  await call(m, 'add', { content: 'Bob', user_id: 'b' });
  const before = await call(m, 'list', { order: 'created_asc' });
  const misspelt = {
    id: kept.id,
    user_id: 'a',
    content: 'x',
    query: 'x',
    messages: 'x',
    memories: [],
    path: path.join(CASES_DIR, 'noop.wat'),
    usr: 1,
  };
  for (const op of native.operations()) {
    for (const request of [[1], 'text', 7, { id: 5, user_id: 5, content: 5 }, misspelt]) {
      await assert.rejects(call(m, op, request), { code: 'AM_INVALID_INPUT' }, `${op} ${JSON.stringify(request)}`);
    }
  }
  assert.deepEqual(await call(m, 'list', { order: 'created_asc' }), before);
  assert.deepEqual(await call(m, 'plugin_list', {}), []);
  await m.close();
});
