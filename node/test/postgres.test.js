'use strict';
// Stores on PostgreSQL (+ pgvector): opened by URL, every kind of call on them, copies from
// SQLite into PostgreSQL and back, the `postgres` option, and the password kept out of
// `location` and error messages.
//
// The server is the one `bash tests/postgres.sh run -- bash node/test/run.sh` starts
// (AGENTMEM_TEST_PG_URL). Without it the server tests are skipped, saying why, unless
// AGENTMEM_REQUIRE_POSTGRES=1: then they fail. Each store gets a schema of its own, made with
// the `postgres` client (a dev dependency). The option checks need no server and always run.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { Memory, AlreadyExistsError, InvalidInputError, StorageError } = require('..');

const SERVER = process.env.AGENTMEM_TEST_PG_URL || null;
const REQUIRED = process.env.AGENTMEM_REQUIRE_POSTGRES === '1';
const NO_SERVER = 'no PostgreSQL server (AGENTMEM_TEST_PG_URL; run through tests/postgres.sh)';
// node:test's `skip` option: a reason when the server tests cannot run.
const SKIP = SERVER || REQUIRED ? false : NO_SERVER;
const HASHING = { embedder: { provider: 'hashing', dimensions: 64 } };
// A password no role has: it must never come back in a message.
const WRONG_PASSWORD = 'wrong-Pw-7f3a9c';
const EVERYTHING = { includeExpired: true, order: 'created_asc', limit: 10000 };

let nextSchema = 0;

/** The server's URL; fails the test when the server is required but missing. */
function server() {
  if (!SERVER) {
    assert.fail('AGENTMEM_REQUIRE_POSTGRES=1 but AGENTMEM_TEST_PG_URL is not set (run through tests/postgres.sh)');
  }
  return SERVER;
}

/** A URL to a new, empty schema of the test server (public, which holds the extensions,
 * second in the search path). */
async function freshStore(name) {
  const url = server();
  const schema = `node_${name}_${process.pid}_${nextSchema++}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const postgres = require('postgres');
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await sql.unsafe(`CREATE SCHEMA ${schema}`);
  } finally {
    await sql.end();
  }
  return `${url}${url.includes('?') ? '&' : '?'}options=-csearch_path%3D${schema}%2Cpublic`;
}

/** What must not show where a store describes itself: `:password@` (the user name may show)
 * and the whole URL; and the wrong password tried. */
function assertHidden(text, url) {
  const { password } = new URL(url);
  const secrets = [url, WRONG_PASSWORD];
  if (password) secrets.push(`:${password}@`, `:${decodeURIComponent(password)}@`);
  for (const secret of secrets) {
    assert.ok(!String(text).includes(secret), `${secret} shows in ${text}`);
  }
}

/** An error's message and those of its causes. */
function errorTexts(e) {
  const texts = [];
  for (let cause = e; cause instanceof Error; cause = cause.cause) texts.push(cause.message);
  return texts.join('\n');
}

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent_mem-node-pg-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('postgres: opened by URL, every call works; location hides the password', { skip: SKIP }, async () => {
  const url = await freshStore('open');
  const m = await Memory.open(url, HASHING);
  try {
    assert.equal(m.path, null);
    assert.match(m.location, /^postgres(ql)?:\/\//);
    assertHidden(m.location, url);
    const alice = await m.add('Alice is allergic to peanuts', { userId: 'alice', metadata: { topic: 'health' } });
    const bob = await m.add('Bob plays the cello on Sundays', { userId: 'bob' });
    const carol = await m.add('Carol runs marathons', { agentId: 'coach', kind: 'semantic' });
    assert.equal(alice.added, true);
    assert.deepEqual(await m.add('Alice is allergic to peanuts', { userId: 'alice' }), { id: alice.id, added: false });

    const got = await m.get(alice.id);
    assert.equal(got.content, 'Alice is allergic to peanuts');
    assert.equal(got.user_id, 'alice');
    assert.deepEqual(got.metadata, { topic: 'health' });
    assert.deepEqual((await m.search('cello', { mode: 'keyword' })).map((h) => h.id), [bob.id]);
    assert.equal((await m.search('Carol runs marathons', { mode: 'vector', limit: 1 }))[0].id, carol.id);
    assert.equal((await m.search('peanuts', { userId: 'alice' }))[0].id, alice.id);
    assert.equal((await m.search('marathnos', { mode: 'fuzzy' }))[0].id, carol.id);
    assert.equal(await m.count({ filters: { topic: 'health' } }), 1);

    await m.update(bob.id, { content: 'Bob plays the viola on Sundays' });
    await m.delete(carol.id);
    const history = await m.history(bob.id);
    assert.deepEqual(history.map((h) => h.event), ['ADD', 'UPDATE']);
    assert.equal(history[1].old_content, 'Bob plays the cello on Sundays');
    assert.deepEqual((await m.history(carol.id)).map((h) => h.event), ['ADD', 'DELETE']);
    const page = await m.list({ order: 'created_asc' });
    assert.deepEqual(page.items.map((r) => r.id), [alice.id, bob.id]);

    // A second handle (its own pool) on the same store sees the writes.
    const again = await Memory.open(url, HASHING);
    assert.equal(await again.count(), 2);
    assert.equal((await again.search('viola', { mode: 'keyword' }))[0].id, bob.id);
    await again.close();
  } finally {
    await m.close();
  }
});

test('postgres: copyInto from a SQLite file into PostgreSQL and back', { skip: SKIP }, async (t) => {
  const dir = tempDir(t);
  const url = await freshStore('copy');
  const file = await Memory.open(path.join(dir, 'source.db'), HASHING);
  const pg = await Memory.open(url, HASHING);
  const back = await Memory.open(path.join(dir, 'back.db'), HASHING);
  try {
    await copyBothWays(file, pg, back, url);
  } finally {
    // Before tempDir's hook removes the folder: closing saves the files' indexes there.
    await Promise.all([file.close(), pg.close(), back.close()]);
  }
});

/** The body of the copy test: `file` (SQLite) → `pg` (PostgreSQL, at `url`) → `back`. */
async function copyBothWays(file, pg, back, url) {
  const ids = [
    (await file.add('Alice is vegetarian', { userId: 'alice', agentId: 'chef', metadata: { topic: 'food', stars: 5 } })).id,
    (await file.add('Bob lives in Lyon', { userId: 'bob', runId: 'r1', orgId: 'acme', kind: 'semantic' })).id,
    (await file.add('a passing thought', { expiresAt: '2001-01-01' })).id,
    (await file.add('Dan hates olives', { userId: 'dan' })).id,
  ];
  await file.update(ids[1], { content: 'Bob lives in Paris', metadata: { moved: true } });
  await file.delete(ids[3]);

  // Four ADDs, one UPDATE, one DELETE.
  assert.deepEqual(await file.copyInto(pg), { memories: 3, history: 6, versions: 2, entities: 0, relations: 0 });
  assert.deepEqual(await pg.copyInto(back), { memories: 3, history: 6, versions: 2, entities: 0, relations: 0 });
  for (const copy of [pg, back]) {
    assert.deepEqual((await copy.list(EVERYTHING)).items, (await file.list(EVERYTHING)).items);
    for (const id of ids) assert.deepEqual(await copy.history(id), await file.history(id));
    for (const [query, options] of [
      ['Paris', { mode: 'keyword' }],
      ['Alice is vegetarian', { mode: 'vector', limit: 2 }],
      ['vegetarain', { mode: 'fuzzy' }],
      ['who lives in Paris', { userId: 'bob' }],
    ]) {
      const want = (await file.search(query, options)).map((h) => h.id);
      assert.ok(want.length > 0, query);
      assert.deepEqual((await copy.search(query, options)).map((h) => h.id), want, query);
    }
  }

  // The PostgreSQL store is no longer empty: refused, nothing written, no password shown.
  await assert.rejects(file.copyInto(pg), (e) => {
    assert.ok(e instanceof AlreadyExistsError, String(e));
    assert.equal(e.code, 'AM_ALREADY_EXISTS');
    assert.match(e.message, /not empty/);
    assertHidden(errorTexts(e), url);
    return true;
  });
  assert.equal(await pg.count(), 2);
  await assert.rejects(file.copyInto(url), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
}

test('postgres: a wrong password or an unreachable server is a StorageError without the password', { skip: SKIP }, async () => {
  const url = new URL(await freshStore('password'));
  url.password = WRONG_PASSWORD;
  await assert.rejects(Memory.open(url.href, HASHING), (e) => {
    assert.ok(e instanceof StorageError, String(e));
    assert.match(errorTexts(e), /password/i);
    assertHidden(errorTexts(e), server());
    return true;
  });
  url.port = '1'; // nothing listens there
  await assert.rejects(Memory.open(url.href, { ...HASHING, postgres: { connectTimeoutMs: 2000 } }), (e) => {
    assert.ok(e instanceof StorageError, String(e));
    assertHidden(errorTexts(e), server());
    return true;
  });
});

test('postgres: a libpq connection string opens the same store as the URL', { skip: SKIP }, async (t) => {
  const url = await freshStore('conninfo');
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  const schema = decodeURIComponent(u.searchParams.get('options')).replace('-csearch_path=', '');
  const conninfo =
    `host=${u.hostname} port=${u.port} dbname=${u.pathname.slice(1)} user=${decodeURIComponent(u.username)} ` +
    `password='${password.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}' options='-c search_path=${schema}'`;
  const m = await Memory.open(conninfo, HASHING);
  t.after(() => m.close());
  assert.equal(m.path, null);
  assert.match(m.location, /password=\*\*\*/);
  assert.ok(!m.location.includes(`'${password}'`), m.location);
  const { id } = await m.add('opened by a connection string', { userId: 'u' });
  const byUrl = await Memory.open(url, HASHING);
  t.after(() => byUrl.close());
  assert.equal((await byUrl.get(id)).content, 'opened by a connection string');
  await assert.rejects(Memory.open(`${conninfo} colour=blue`, HASHING), InvalidInputError);
});

test('postgres: the pool options are checked and applied', async () => {
  // Checked before anything is opened: no server needed.
  await assert.rejects(Memory.open(':memory:', { ...HASHING, postgres: { poolSize: 0 } }), InvalidInputError);
  await assert.rejects(
    Memory.open('postgres://nobody@127.0.0.1:1/none', { ...HASHING, postgres: { poolSise: 2 } }),
    (e) => e instanceof InvalidInputError && /poolSise/.test(e.message),
  );
  await assert.rejects(Memory.open(':memory:', { postgres: { poolSize: '8' } }), {
    name: 'TypeError',
    message: /options\.postgres\.poolSize must be a finite number/,
  });
  if (SKIP) return;
  const options = { poolSize: 2, connectTimeoutMs: 5000, poolTimeoutMs: 5000, statementTimeoutMs: 10000 };
  const m = await Memory.open(await freshStore('pool'), { ...HASHING, postgres: options });
  try {
    const added = await Promise.all(Array.from({ length: 8 }, (_, i) => m.add(`memory number ${i}`, { userId: 'u' })));
    assert.equal(await m.count({ userId: 'u' }), 8);
    assert.equal((await m.search('number 3', { userId: 'u', mode: 'keyword' }))[0].id, added[3].id);
  } finally {
    await m.close();
  }
});
