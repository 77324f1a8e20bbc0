'use strict';
// Every method of Memory, with the deterministic hashing embedder (and no embedder for the
// vector variants): arguments in camelCase, results as the JSON objects of the core.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const am = require('..');
const { Memory } = am;

const HASHING = { embedder: { provider: 'hashing', dimensions: 64 } };
const RECORD_KEYS = [
  'content',
  'created_at',
  'hash',
  'id',
  'kind',
  'metadata',
  'updated_at',
  'valid_from_tx',
  'version',
];

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent_mem-node-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function open(t, options = HASHING) {
  const m = await Memory.open(':memory:', options);
  t.after(() => m.close());
  return m;
}

test('open: a file store, its path and model, reopened with its data', async (t) => {
  const file = path.join(tempDir(t), 'memories.db');
  const m = await Memory.open(file, {
    ...HASHING,
    persistIndex: true,
    index: { connectivity: 8, expansionAdd: 32, expansionSearch: 64, quantization: 'f16', exactScanLimit: 100 },
    search: { mode: 'hybrid', limit: 5, threshold: null, weights: { vector: 1, keyword: 1, fuzzy: 0.5, rrfK: 30 } },
  });
  assert.equal(m.path, file);
  assert.equal(m.embeddingModel, 'hashing-64');
  assert.equal(m.closed, false);
  const { id } = await m.add('stored on disk', { userId: 'u' });
  await m.flush();
  await m.close();
  assert.equal(m.closed, true);
  assert.ok(fs.existsSync(`${file}.usearch`), 'close saved the vector index');

  const again = await Memory.open(file, HASHING);
  assert.equal((await again.get(id)).content, 'stored on disk');
  const hits = await again.search('stored on disk', { mode: 'vector' });
  assert.equal(hits[0].id, id);
  await again.close();
});

test('open: in memory, no embedder, search defaults from the options', async (t) => {
  const m = await open(t, { embedder: 'none', search: { mode: 'keyword', limit: 1 } });
  assert.equal(m.path, null);
  assert.equal(m.embeddingModel, null);
  await m.addWithVector('red apple', [1, 0]);
  await m.addWithVector('red car', new Float32Array([0, 1]));
  // Keyword mode needs no embedder, and the limit of one comes from the options.
  const hits = await m.search('red');
  assert.equal(hits.length, 1);
});

test('add: the result, duplicates, scope, kind, metadata, expiry', async (t) => {
  const m = await open(t);
  const first = await m.add('Alice is allergic to peanuts', {
    userId: 'alice',
    agentId: 'doctor',
    runId: 'r1',
    orgId: 'clinic',
    kind: 'semantic',
    metadata: { topic: 'health', severity: 3 },
    expiresAt: new Date('2999-01-01T00:00:00Z'),
  });
  assert.deepEqual(Object.keys(first).sort(), ['added', 'id']);
  assert.equal(first.added, true);
  assert.match(first.id, /^[0-9a-f-]{36}$/);
  const again = await m.add('Alice is allergic to peanuts', { userId: 'alice', agentId: 'doctor', runId: 'r1', orgId: 'clinic' });
  assert.deepEqual(again, { id: first.id, added: false });
  const record = await m.get(first.id);
  assert.deepEqual(Object.keys(record).sort(), [...RECORD_KEYS, 'agent_id', 'expires_at', 'org_id', 'run_id', 'user_id'].sort());
  assert.equal(record.user_id, 'alice');
  assert.equal(record.agent_id, 'doctor');
  assert.equal(record.run_id, 'r1');
  assert.equal(record.org_id, 'clinic');
  assert.equal(record.kind, 'semantic');
  assert.deepEqual(record.metadata, { topic: 'health', severity: 3 });
  assert.equal(record.expires_at, '2999-01-01T00:00:00.000000Z');
  assert.equal(record.hash, crypto.createHash('md5').update(record.content).digest('hex'));
  assert.match(record.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  // A global memory leaves the scope fields out.
  const global = await m.get((await m.add('the sky is blue')).id);
  assert.deepEqual(Object.keys(global).sort(), RECORD_KEYS);
});

test('add: the JSON names of options work too, and a misspelt one is refused by the core', async (t) => {
  const m = await open(t);
  const { id } = await m.add('snake case scope', { user_id: 'bob' });
  assert.equal((await m.get(id)).user_id, 'bob');
  await assert.rejects(m.add('typo', { usrId: 'bob' }), (e) => {
    assert.ok(e instanceof am.InvalidInputError);
    assert.match(e.message, /usrId/);
    return true;
  });
  await assert.rejects(m.add('twice', { userId: 'a', user_id: 'b' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  await assert.rejects(m.add('content twice', { content: 'other' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  assert.equal(await m.count(), 1);
});

test('addBatch: strings and objects, one transaction, results in order', async (t) => {
  const m = await open(t);
  const out = await m.addBatch([
    'plain text',
    { content: 'with a scope', userId: 'u', kind: 'procedural', metadata: { n: 1 } },
    'plain text',
  ]);
  assert.equal(out.length, 3);
  assert.deepEqual(out.map((o) => o.added), [true, true, false]);
  assert.equal(out[2].id, out[0].id);
  assert.equal((await m.get(out[1].id)).kind, 'procedural');
  // All or nothing: one bad memory and none is stored.
  await assert.rejects(m.addBatch(['fine', { content: '' }]), am.InvalidInputError);
  assert.equal(await m.count({ userId: 'u' }), 1);
  assert.equal(await m.count(), 2);
});

test('addBatchWithVectors / addWithVector / searchWithVector / updateWithVector', async (t) => {
  const m = await open(t, { embedder: 'none' });
  const out = await m.addBatchWithVectors(
    ['north', { content: 'east', userId: 'u' }],
    [new Float32Array([0, 1, 0]), [1, 0, 0]],
  );
  assert.deepEqual(out.map((o) => o.added), [true, true]);
  const { id: west } = await m.addWithVector('west', Float64Array.from([-1, 0, 0]), { kind: 'knowledge' });
  let hits = await m.searchWithVector('', [0.9, 0.1, 0], { mode: 'vector', limit: 2 });
  assert.deepEqual(hits.map((h) => h.content), ['east', 'north']);
  assert.ok(hits[0].similarity > 0.9);
  assert.ok('explain' in hits[0] && 'vector' in hits[0].explain);
  const updated = await m.updateWithVector(west, { content: 'south' }, [0, -1, 0]);
  assert.equal(updated.content, 'south');
  assert.equal(updated.kind, 'knowledge');
  hits = await m.searchWithVector('', [0, -1, 0], { mode: 'vector', limit: 1 });
  assert.equal(hits[0].id, west);
  // Text calls need an embedder.
  await assert.rejects(m.add('no vector'), am.UnsupportedError);
  await assert.rejects(m.search('north', { mode: 'vector' }), am.UnsupportedError);
  // The core checks the dimension and the numbers.
  await assert.rejects(m.addWithVector('short', [1, 0]), am.InvalidInputError);
  await assert.rejects(m.addWithVector('nan', [NaN, 0, 0]), am.InvalidInputError);
  await assert.rejects(m.addBatchWithVectors(['a', 'b'], [[1, 0, 0]]), /one vector per memory/);
});

test('search: modes, scope, filters, threshold, weights and the hit shape', async (t) => {
  const m = await open(t);
  await m.addBatch([
    { content: 'Alice likes green tea', userId: 'alice', metadata: { topic: 'drinks' } },
    { content: 'Alice plays the piano', userId: 'alice', metadata: { topic: 'music' } },
    { content: 'Bob likes black tea', userId: 'bob', metadata: { topic: 'drinks' } },
    { content: 'Everyone loves pizza' },
  ]);
  const keyword = await m.search('tea', { mode: 'keyword', userId: 'alice' });
  assert.deepEqual(keyword.map((h) => h.content), ['Alice likes green tea']);
  const hit = keyword[0];
  assert.deepEqual(Object.keys(hit).sort(), [...RECORD_KEYS, 'explain', 'score', 'user_id'].sort());
  assert.equal(typeof hit.score, 'number');
  assert.equal(hit.explain.keyword.rank, 1);

  const filtered = await m.search('tea', { mode: 'keyword', filters: { topic: 'drinks' }, limit: 10 });
  assert.equal(filtered.length, 2);
  const withGlobal = await m.search('pizza', { mode: 'keyword', userId: 'alice', includeGlobal: true });
  assert.deepEqual(withGlobal.map((h) => h.content), ['Everyone loves pizza']);
  const fuzzy = await m.search('piza', { mode: 'fuzzy' });
  assert.equal(fuzzy[0].content, 'Everyone loves pizza');
  const phrase = await m.search('green tea', { mode: 'phrase' });
  assert.deepEqual(phrase.map((h) => h.content), ['Alice likes green tea']);
  const hybrid = await m.search('green tea', { weights: { vector: 1, keyword: 2, fuzzy: 0.5, rrfK: 10 } });
  assert.equal(hybrid[0].content, 'Alice likes green tea');
  assert.equal(typeof hybrid[0].similarity, 'number');
  const none = await m.search('green tea', { mode: 'vector', threshold: 1.01 });
  assert.deepEqual(none, []);
  await assert.rejects(m.search('tea', { weights: { vector: -1 } }), am.InvalidInputError);
  await assert.rejects(m.search('tea', { filters: { topic: { like: 'x' } } }), /filters\.topic/);
});

test('list: pages by cursor and offset, order, filters, expired', async (t) => {
  const m = await open(t);
  const ids = [];
  for (const c of ['one', 'two', 'three', 'four', 'five']) ids.push((await m.add(c, { userId: 'u' })).id);
  await m.add('gone', { userId: 'u', expiresAt: '2000-01-01' });
  const seen = [];
  let cursor = null;
  do {
    const page = await m.list({ userId: 'u', order: 'created_asc', limit: 2, cursor });
    assert.deepEqual(Object.keys(page).sort(), ['items', 'next_cursor']);
    seen.push(...page.items.map((i) => i.id));
    cursor = page.next_cursor;
  } while (cursor !== null);
  assert.deepEqual(seen, ids);
  const byOffset = await m.list({ userId: 'u', order: 'created_desc', offset: 1, limit: 2 });
  assert.deepEqual(byOffset.items.map((i) => i.content), ['four', 'three']);
  const expired = await m.list({ userId: 'u', includeExpired: true, filters: { expires_at: '*' } });
  assert.deepEqual(expired.items.map((i) => i.content), ['gone']);
  const everything = await m.list();
  assert.equal(everything.items.length, 5);
});

test('list withTotal: the selection\'s size, from the page\'s snapshot', async (t) => {
  const m = await open(t);
  for (const c of ['one', 'two', 'three']) await m.add(c, { userId: 'u' });
  await m.add('gone', { userId: 'u', expiresAt: '2000-01-01' });
  const page = await m.list({ userId: 'u', limit: 2, withTotal: true });
  assert.deepEqual([page.items.length, page.total], [2, 3]);
  assert.equal((await m.list({ userId: 'u', includeExpired: true, withTotal: true })).total, 4);
  assert.equal((await m.list({ userId: 'u', with_total: true })).total, 3);
  assert.deepEqual(Object.keys(await m.list({ userId: 'u' })).sort(), ['items', 'next_cursor']);
  await assert.rejects(m.list({ withTotal: 'yes' }), TypeError);
});

test('update mergeMetadata: keys merged into the stored metadata, concurrent merges all kept', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'merge.db');
  // Closed before the directory goes (after-hooks run in order).
  const m = await Memory.open(file, HASHING);
  const other = await Memory.open(file, HASHING);
  const { id } = await m.add('shared notes', { metadata: { base: 0, b: { x: 1 } } });
  const merged = await m.update(id, { metadata: { b: { y: 2 }, c: 3 }, mergeMetadata: true });
  assert.deepEqual(merged.metadata, { base: 0, b: { y: 2 }, c: 3 });
  await assert.rejects(m.update(id, { mergeMetadata: true }), am.InvalidInputError);
  const calls = [];
  for (let i = 0; i < 40; i++) {
    calls.push((i % 2 ? other : m).update(id, { metadata: { [`k${i}`]: i }, mergeMetadata: true }));
  }
  await Promise.all(calls);
  const stored = (await m.get(id)).metadata;
  assert.equal(Object.keys(stored).length, 3 + 40);
  for (let i = 0; i < 40; i++) assert.equal(stored[`k${i}`], i);
  await other.close();
  await m.close();
});

test('addMessages without inference: each event names its role and author', async (t) => {
  const m = await open(t);
  const events = await m.addMessages(
    [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'I sail on Sundays', name: 'dan' },
      { role: 'assistant', content: 'Noted.' },
    ],
    { userId: 'dan', infer: false },
  );
  assert.deepEqual(
    events.map((e) => [e.event, e.role, e.actor_id]),
    [
      ['ADD', 'user', 'dan'],
      ['ADD', 'assistant', undefined],
    ],
  );
  assert.deepEqual((await m.get(events[0].id)).metadata, { role: 'user', actor_id: 'dan' });
});

test('count, update, history, delete, deleteAll, purgeExpired, reset', async (t) => {
  const m = await open(t);
  const { id } = await m.add('likes tea', { userId: 'u', metadata: { a: 1 } });
  await m.add('likes coffee', { userId: 'v' });
  await m.add('temporary', { userId: 'v', expiresAt: new Date(Date.now() - 1000) });
  assert.equal(await m.count(), 2);
  assert.equal(await m.count({ userId: 'v' }), 1);
  assert.equal(await m.count({ filters: { a: 1 } }), 1);

  const updated = await m.update(id, { content: 'likes green tea', metadata: { a: 2 }, kind: 'semantic', expiresAt: '2999-01-01' });
  assert.equal(updated.content, 'likes green tea');
  assert.deepEqual(updated.metadata, { a: 2 });
  assert.equal(updated.kind, 'semantic');
  assert.equal(updated.expires_at, '2999-01-01T00:00:00.000000Z');
  const cleared = await m.update(id, { expiresAt: null });
  assert.equal(cleared.expires_at, undefined);
  await assert.rejects(m.update(id, {}), /nothing to update/);

  const history = await m.history(id);
  assert.deepEqual(history.map((h) => h.event), ['ADD', 'UPDATE', 'UPDATE']);
  assert.deepEqual(Object.keys(history[1]).sort(), ['actor', 'change_id', 'created_at', 'event', 'id', 'is_deleted', 'memory_id', 'new_content', 'old_content']);
  assert.equal(history[1].old_content, 'likes tea');
  assert.equal(history[1].new_content, 'likes green tea');
  assert.equal(history[0].old_content, null);

  assert.equal(await m.delete(id), undefined);
  await assert.rejects(m.get(id), am.NotFoundError);
  const after = await m.history(id);
  assert.equal(after.at(-1).event, 'DELETE');
  assert.equal(after.at(-1).is_deleted, true);

  assert.equal(await m.purgeExpired(), 1);
  assert.equal(await m.deleteAll({ userId: 'v' }), 1);
  await assert.rejects(m.deleteAll({}), am.InvalidInputError);
  await m.add('something', { userId: 'w' });
  assert.equal(await m.reset(), undefined);
  assert.equal(await m.count(), 0);
});

test('close: idempotent; calls after it fail with ClosedError; running calls finish', async () => {
  const m = await Memory.open(':memory:', HASHING);
  const running = m.addBatch(Array.from({ length: 200 }, (_, i) => `memory ${i}`));
  const closing = m.close();
  assert.equal((await running).length, 200);
  await closing;
  await m.close();
  assert.equal(m.closed, true);
  for (const call of [() => m.count(), () => m.add('x'), () => m.get('x'), () => m.search('x'), () => m.flush(), () => m.reset()]) {
    await assert.rejects(call(), (e) => e instanceof am.ClosedError && e.code === 'AM_CLOSED');
  }
});

test('location, and copyInto between two stores (ids, history kept; the target must be empty and open)', async (t) => {
  const file = path.join(tempDir(t), 'copy.db');
  const source = await Memory.open(file, HASHING);
  try {
    assert.equal(source.location, file);
    const target = await open(t);
    assert.equal(target.location, ':memory:');
    const kept = await source.add('kept', { userId: 'u', metadata: { n: 1 } });
    const gone = await source.add('gone', { userId: 'u' });
    await source.update(kept.id, { content: 'kept and changed' });
    await source.delete(gone.id);
    assert.deepEqual(await source.copyInto(target), { memories: 1, history: 4, versions: 2, entities: 0, relations: 0 });
    assert.deepEqual(await target.get(kept.id), await source.get(kept.id));
    assert.deepEqual(await target.history(gone.id), await source.history(gone.id));
    await assert.rejects(source.copyInto(target), (e) => e instanceof am.AlreadyExistsError && e.code === 'AM_ALREADY_EXISTS');
    const closed = await Memory.open(':memory:', HASHING);
    await closed.close();
    await assert.rejects(source.copyInto(closed), (e) => e instanceof am.ClosedError && /target/.test(e.message));
    await assert.rejects(source.copyInto({}), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  } finally {
    // Before tempDir's hook removes the folder: closing saves the index there.
    await source.close();
  }
});

test('versions, and get, list, count and search asOf a past moment', async (t) => {
  const m = await open(t);
  const { id } = await m.add('Erin lives in Lyon', { userId: 'erin' });
  const other = await m.add("Erin's cat is called Mochi", { userId: 'erin' });
  const before = (await m.get(other.id)).valid_from_tx;
  // A Date has milliseconds (the store microseconds): one a millisecond later is still
  // before the update.
  await new Promise((r) => setTimeout(r, 3));
  const beforeDate = new Date(Date.parse(before) + 1);
  const updated = await m.update(id, { content: 'Erin lives in Porto' });
  assert.equal(updated.version, 2);
  await m.delete(other.id);

  const then = await m.get(id, { asOf: before });
  assert.deepEqual([then.content, then.version], ['Erin lives in Lyon', 1]);
  assert.equal(then.valid_to_tx, updated.valid_from_tx);
  assert.equal((await m.get(id)).valid_to_tx, undefined);
  assert.deepEqual(
    (await m.versions(id)).map((v) => v.content),
    ['Erin lives in Lyon', 'Erin lives in Porto'],
  );
  const hits = await m.search('Lyon', { userId: 'erin', mode: 'keyword', asOf: before });
  assert.deepEqual(hits.map((h) => h.content), ['Erin lives in Lyon']);
  assert.deepEqual(await m.search('Lyon', { userId: 'erin', mode: 'keyword' }), []);
  const page = await m.list({ userId: 'erin', asOf: before, withTotal: true });
  assert.equal(page.total, 2);
  assert.equal(await m.count({ userId: 'erin', asOf: beforeDate }), 2);
  assert.equal(await m.count({ userId: 'erin' }), 1);
  assert.equal(await m.count({ asOf: '2000-01-01' }), 0);
  await assert.rejects(m.get(id, { asOf: '2000-01-01' }), { code: 'AM_NOT_FOUND' });
  await assert.rejects(m.search('Lyon', { asOf: 'last tuesday' }), (e) => {
    assert.equal(e.code, 'AM_INVALID_INPUT');
    assert.match(e.message, /as_of/);
    return true;
  });
  await assert.rejects(m.versions('no-such-id'), { code: 'AM_NOT_FOUND' });
});

test('valid time, supersede, undo and revert', async (t) => {
  const m = await open(t);
  const { id } = await m.add('Alice lives in Paris', { userId: 'alice', validFrom: '2019-05-01' });
  assert.equal((await m.get(id)).valid_from, '2019-05-01T00:00:00.000000Z');
  const done = await m.supersede(id, 'Alice lives in Berlin', { validFrom: new Date('2024-03-01') });
  assert.equal(done.superseded.superseded_by, done.memory.id);
  assert.equal(done.superseded.valid_to, '2024-03-01T00:00:00.000000Z');
  const found = async (options = {}) =>
    (await m.search('Alice lives', { userId: 'alice', mode: 'keyword', ...options }))
      .map((h) => h.content)
      .sort();
  assert.deepEqual(await found(), ['Alice lives in Berlin']);
  assert.deepEqual(await found({ includeSuperseded: true }), ['Alice lives in Berlin', 'Alice lives in Paris']);
  assert.deepEqual(await found({ validAt: '2022-01-01' }), ['Alice lives in Paris']);
  assert.equal(await m.count({ userId: 'alice', includeSuperseded: true }), 2);
  assert.equal((await m.list({ userId: 'alice', validAt: '2025-01-01' })).items.length, 1);

  const undone = await m.undo(done.change_id);
  assert.deepEqual(undone.removed, [done.memory.id]);
  assert.deepEqual(await found(), ['Alice lives in Paris']);
  await assert.rejects(m.undo(done.change_id), /already undone/);
  const history = await m.history(id);
  assert.equal(history.at(-2).undone_by, undone.change_id);

  await m.update(id, { content: 'Alice lives in Lyon', validTo: '2030-01-01' });
  const changed = (await m.history(id)).at(-1).change_id;
  await m.update(id, { content: 'Alice lives in Nice' });
  await assert.rejects(m.undo(changed), /force/);
  assert.equal((await m.undo(changed, { force: true })).restored[0].content, 'Alice lives in Paris');
  assert.equal((await m.revert(id, 1)).restored[0].content, 'Alice lives in Paris');
  await assert.rejects(m.revert(id, 99), { code: 'AM_NOT_FOUND' });
  await assert.rejects(m.update(id, { validTo: '2000-01-01' }), /valid_to/);
  await assert.rejects(m.revert(id, 'one'), { code: 'ERR_INVALID_ARG_TYPE' });
});

test('time words in a query', async (t) => {
  const m = await open(t);
  await m.add('Bob worked in Oslo', { userId: 'bob', validFrom: '2022-01-01', validTo: '2023-06-01' });
  await m.add('Bob works in Bergen', { userId: 'bob', validFrom: '2023-06-01' });
  const hits = await m.search('where did Bob work in 2022', {
    userId: 'bob',
    mode: 'keyword',
    timeAware: true,
    now: '2025-01-01',
  });
  assert.deepEqual(hits.map((h) => h.content), ['Bob worked in Oslo']);
});

test('pruneVersions follows the historyRetention option', async (t) => {
  const m = await open(t, { ...HASHING, historyRetention: { keepVersions: 1 } });
  const { id } = await m.add('Dana drinks tea');
  await m.update(id, { content: 'Dana drinks coffee' });
  await m.update(id, { content: 'Dana drinks cocoa' });
  assert.deepEqual(await m.pruneVersions(), { versions: 1 });
  assert.deepEqual((await m.versions(id)).map((v) => v.version), [2, 3]);
});

test('the constructor is private', () => {
  assert.throws(() => new Memory(), TypeError);
});
