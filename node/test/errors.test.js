'use strict';
// Errors: the code table against tests/error_codes.json, the class of each error the core
// reports, and TypeErrors for bad argument types before anything reaches the core.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const am = require('..');
const { Memory, AgentMemError } = am;

const TABLE = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', 'tests', 'error_codes.json'), 'utf8'),
).codes;
const HASHING = { embedder: { provider: 'hashing', dimensions: 64 } };

/** The exported class for each Node code. */
const CLASSES = new Map(
  Object.values(am)
    .filter((v) => typeof v === 'function' && v.prototype instanceof AgentMemError)
    .map((cls) => [cls.code, cls]),
);

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent_mem-node-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the addon reports the core table of tests/error_codes.json', () => {
  assert.deepEqual(
    am.errorCodes(),
    TABLE.map(({ code, name, node }) => ({ code, name, node })),
  );
});

test('one AgentMemError subclass per code, with that code', () => {
  assert.equal(CLASSES.size, TABLE.length);
  for (const row of TABLE) {
    const Cls = CLASSES.get(row.node);
    assert.ok(Cls, `no class for ${row.node}`);
    const e = new Cls('message');
    assert.ok(e instanceof AgentMemError && e instanceof Error);
    assert.equal(e.code, row.node);
    assert.equal(e.name, Cls.name);
    assert.equal(e.message, 'message');
  }
  // The Python class names (VectorIndexError for Index), the rest as the core names them.
  assert.equal(CLASSES.get('AM_INDEX'), am.VectorIndexError);
  for (const row of TABLE.filter((r) => r.name !== 'Index')) {
    assert.equal(CLASSES.get(row.node).name, `${row.name}Error`);
  }
});

/** `promise` rejects with the class of `code`, carrying that code. */
async function rejectsWith(promise, code, pattern) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof AgentMemError, `${e}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e instanceof CLASSES.get(code), `${e.name} is not the class of ${code}`);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

test('the errors the core reports arrive as their classes', async (t) => {
  const dir = tempDir(t);
  const m = await Memory.open(':memory:', HASHING);
  const { id } = await m.add('the one memory', { userId: 'u' });
  const { id: other } = await m.add('another memory', { userId: 'u' });
  await rejectsWith(m.add(''), 'AM_INVALID_INPUT', /content/);
  await rejectsWith(m.list({ filters: { AND: [{ user_id: 'a' }, { created_at: { gte: 'yesterday' } }] } }), 'AM_INVALID_INPUT', /filters\.AND\[1\]\.created_at\.gte/);
  await rejectsWith(m.get('00000000-0000-0000-0000-000000000000'), 'AM_NOT_FOUND');
  await rejectsWith(m.update(id, { content: 'another memory' }), 'AM_ALREADY_EXISTS', new RegExp(other));
  await m.close();
  await rejectsWith(m.count(), 'AM_CLOSED');

  const none = await Memory.open(':memory:', { embedder: 'none' });
  await rejectsWith(none.add('text without a vector'), 'AM_UNSUPPORTED');
  await none.close();

  const notAStore = path.join(dir, 'notes.db');
  fs.writeFileSync(notAStore, 'these are notes, not a SQLite database; agent_mem must refuse them untouched');
  await rejectsWith(Memory.open(notAStore, HASHING), 'AM_CORRUPTED');
  assert.match(fs.readFileSync(notAStore, 'utf8'), /^these are notes/);

  // The cause the core reported (SQLite's own error) comes along as `cause`.
  await assert.rejects(Memory.open(path.join(dir, 'missing', 'dir', 'x.db'), HASHING), (e) => {
    assert.ok(e instanceof am.StorageError);
    assert.ok(e.cause instanceof Error && e.cause.message.length > 0, 'a cause');
    return true;
  });

  const empty = fs.mkdtempSync(path.join(dir, 'model-'));
  await rejectsWith(
    Memory.open(':memory:', { embedder: { provider: 'local', modelDir: empty } }),
    'AM_MODEL_UNAVAILABLE',
    /config\.json/,
  );
  await rejectsWith(Memory.open(':memory:', { embedder: 'gpt' }), 'AM_INVALID_INPUT', /unknown provider/);
  await rejectsWith(Memory.open(':memory:', { index: { conectivity: 8 } }), 'AM_INVALID_INPUT', /conectivity/);
  await rejectsWith(Memory.open('', HASHING), 'AM_INVALID_INPUT', /path/);
});

test('errors keep the caller in their stack', async () => {
  const m = await Memory.open(':memory:', HASHING);
  async function lookUpSomething() {
    return await m.get("00000000-0000-0000-0000-000000000000");
  }
  await assert.rejects(lookUpSomething(), (e) => /lookUpSomething/.test(e.stack) && /Memory\.get/.test(e.stack));
  await m.close();
});

test('bad argument types are TypeErrors, and nothing reaches the core', async () => {
  const m = await Memory.open(':memory:', HASHING);
  const { id } = await m.add('kept as it is', { userId: 'u' });
  const bad = {
    'add(number)': () => m.add(5),
    'add(undefined)': () => m.add(),
    'add options not an object': () => m.add('x', 'alice'),
    'add userId number': () => m.add('x', { userId: 7 }),
    'add metadata array': () => m.add('x', { metadata: [1] }),
    'add metadata string': () => m.add('x', { metadata: 'k=v' }),
    'add expiresAt number': () => m.add('x', { expiresAt: 5 }),
    'add expiresAt invalid Date': () => m.add('x', { expiresAt: new Date('nope') }),
    'add kind number': () => m.add('x', { kind: 1 }),
    'addWithVector vector string': () => m.addWithVector('x', 'vector'),
    'addWithVector vector holes': () => m.addWithVector('x', [1, '2', 3]),
    'addBatch not an array': () => m.addBatch('x'),
    'addBatch item number': () => m.addBatch(['x', 5]),
    'addBatch item without content': () => m.addBatch([{ userId: 'u' }]),
    'addBatchWithVectors vectors not an array': () => m.addBatchWithVectors(['x'], new Float32Array(3)),
    'search query number': () => m.search(1),
    'search limit string': () => m.search('x', { limit: '5' }),
    'search limit NaN': () => m.search('x', { limit: NaN }),
    'search threshold Infinity': () => m.search('x', { threshold: Infinity }),
    'search includeGlobal string': () => m.search('x', { includeGlobal: 'yes' }),
    'search weights number': () => m.search('x', { weights: 1 }),
    'search weights.rrfK string': () => m.search('x', { weights: { rrfK: '60' } }),
    'searchWithVector vector object': () => m.searchWithVector('x', { 0: 1 }),
    'get number': () => m.get(1),
    'get null': () => m.get(null),
    'list options array': () => m.list([]),
    'list cursor number': () => m.list({ cursor: 5 }),
    'list offset bigint': () => m.list({ offset: 1n }),
    'count userId boolean': () => m.count({ userId: true }),
    'update id number': () => m.update(1, { content: 'x' }),
    'update changes string': () => m.update(id, 'new text'),
    'update content number': () => m.update(id, { content: 5 }),
    'updateWithVector vector missing': () => m.updateWithVector(id, { content: 'y' }),
    'delete undefined': () => m.delete(),
    'deleteAll options string': () => m.deleteAll('u'),
    'history object': () => m.history({ id }),
    'open path number': () => Memory.open(5),
    'open options string': () => Memory.open(':memory:', 'hashing'),
    'open persistIndex string': () => Memory.open(':memory:', { persistIndex: 'yes' }),
    'open embedder number': () => Memory.open(':memory:', { embedder: 64 }),
    'open dimensions string': () => Memory.open(':memory:', { embedder: { provider: 'hashing', dimensions: '64' } }),
  };
  for (const [what, call] of Object.entries(bad)) {
    await assert.rejects(call(), (e) => {
      assert.ok(e instanceof TypeError, `${what}: ${e}`);
      assert.ok(!(e instanceof AgentMemError), what);
      assert.equal(e.code, 'ERR_INVALID_ARG_TYPE', `${what}: ${e.message}`);
      return true;
    }, what);
  }
  assert.equal(await m.count(), 1);
  assert.deepEqual((await m.history(id)).map((h) => h.event), ['ADD']);
  assert.equal((await m.get(id)).content, 'kept as it is');
  await m.close();
});
