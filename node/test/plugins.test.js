'use strict';
// WASM plugins: registration (WebAssembly text as a string, as bytes, or a file that is
// reloaded when it changes), hooks inside add and search, direct calls with Buffers, the
// sandbox (capabilities, scope, time limit) and the errors a user sees. The plugins are tiny
// modules in WebAssembly text speaking extism's kernel ABI (the same kind as
// core/tests/all/support/wat.rs), so no wasm32 toolchain is needed; the Rust example
// pii_redactor.wasm is used when it was built (examples/plugins/build.sh).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const am = require('..');
const { Memory } = am;

const HASHING = { embedder: { provider: 'hashing', dimensions: 64 } };

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent_mem-node-plugins-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function open(t, options = HASHING) {
  const m = await Memory.open(':memory:', options);
  t.after(() => m.close());
  return m;
}

/** Asserts that `promise` rejects with an AgentMemError of this code whose message contains
 * every needle; returns the error. */
async function rejects(promise, code, ...needles) {
  let error;
  await assert.rejects(promise, (e) => {
    error = e;
    return true;
  });
  assert.ok(error instanceof am.AgentMemError, `not an AgentMemError: ${error}`);
  assert.equal(error.code, code, error.message);
  assert.equal(error.constructor.code, code);
  for (const needle of needles) assert.ok(error.message.includes(needle), error.message);
  return error;
}

// ------------------------------------------------------------------------------- WAT plugins

/**
 * A module exporting each `[name, body]`; a body is
 *   {reply: text}            answers with the text
 *   {echo: true}             answers with its input
 *   {host: name, arg?: text} calls host function `name` with arg (or the input), answers with
 *                            what it returned
 *   {log: text?}             calls am_log(text or the input), answers with its input
 *   {loop: true}             never returns
 *   {trap: true}             traps
 */
function wat(exports) {
  let data = '';
  let funcs = '';
  let next = 16;
  const constant = (text) => {
    const bytes = Buffer.from(text, 'utf8');
    const at = next;
    data += `  (data (i32.const ${at}) "${[...bytes].map((b) => `\\${b.toString(16).padStart(2, '0')}`).join('')}")\n`;
    next += bytes.length + 16;
    return `(call $copy (i32.const ${at}) (i32.const ${bytes.length}))`;
  };
  for (const [name, body] of exports) {
    let code;
    if (body.reply !== undefined) {
      const len = Buffer.byteLength(body.reply);
      code = `(call $output_set ${constant(body.reply)} (i64.const ${len})) (i32.const 0)`;
    } else if (body.echo) {
      code = '(call $output_set (call $input_offset) (call $input_length)) (i32.const 0)';
    } else if (body.host) {
      const arg = body.arg === undefined ? '(call $input_offset)' : constant(body.arg);
      code =
        `(local $r i64) (local.set $r (call $${body.host} ${arg})) ` +
        '(call $output_set (local.get $r) (call $length (local.get $r))) (i32.const 0)';
    } else if (body.log !== undefined) {
      const arg = body.log === true ? '(call $input_offset)' : constant(body.log);
      code =
        `(call $am_log ${arg}) ` +
        '(call $output_set (call $input_offset) (call $input_length)) (i32.const 0)';
    } else if (body.loop) {
      code = '(loop $forever (br $forever)) (i32.const 0)';
    } else if (body.trap) {
      code = 'unreachable';
    } else {
      throw new Error(`unknown body ${JSON.stringify(body)}`);
    }
    funcs += `  (func (export "${name}") (result i32) ${code})\n`;
  }
  return `(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/user" "am_log" (func $am_log (param i64)))
  (import "extism:host/user" "am_config" (func $am_config (result i64)))
  (import "extism:host/user" "am_search" (func $am_search (param i64) (result i64)))
  (import "extism:host/user" "am_get" (func $am_get (param i64) (result i64)))
  (import "extism:host/user" "am_add" (func $am_add (param i64) (result i64)))
  (memory (export "memory") 1)
${data}
  (func $copy (param $ptr i32) (param $len i32) (result i64)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (call $store_u8
          (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $off))
${funcs})
`;
}

const one = (name, body) => wat([[name, body]]);
const ECHO = one('echo', { echo: true });
const onAdd = (answer) => one('on_add', { reply: JSON.stringify(answer) });

// ------------------------------------------------------------------------------- registration

test('register: WebAssembly text as a string, a Buffer or a Uint8Array; camelCase manifest', async (t) => {
  const m = await open(t);
  const info = await m.registerPlugin(
    {
      id: 'text',
      name: 'Echo (text)',
      version: '1.2.3',
      kind: 'function',
      capabilities: ['logging', 'config'],
      config: { greeting: 'hi' },
      limits: { memoryPages: 32, timeoutMs: 500, fuel: 50_000_000 },
      onError: 'skip',
    },
    ECHO,
  );
  assert.equal(info.id, 'text');
  assert.equal(info.name, 'Echo (text)');
  assert.equal(info.version, '1.2.3');
  assert.equal(info.kind, 'function');
  assert.deepEqual([...info.capabilities].sort(), ['config', 'logging']);
  assert.deepEqual(info.limits, { memory_pages: 32, timeout_ms: 500, fuel: 50_000_000 });
  assert.equal(info.on_error, 'skip');
  assert.equal(info.loaded, true);
  assert.deepEqual(info.hooks, []);
  assert.equal(info.path, undefined);

  const buf = await m.registerPlugin({ id: 'buffer', kind: 'function' }, Buffer.from(ECHO));
  // Defaults, in the core's snake_case.
  assert.deepEqual(buf.limits, { memory_pages: 256, timeout_ms: 1000, fuel: null });
  assert.equal(buf.on_error, 'fail');
  assert.equal(buf.name, 'buffer');
  await m.registerPlugin({ id: 'u8', kind: 'function' }, new Uint8Array(Buffer.from(ECHO)));
  // The JSON names pass too, as for every option.
  const snake = await m.registerPlugin({ id: 'snake', kind: 'function', on_error: 'skip', limits: { timeout_ms: 300 } }, ECHO);
  assert.equal(snake.on_error, 'skip');
  assert.equal(snake.limits.timeout_ms, 300);

  for (const id of ['text', 'buffer', 'u8', 'snake']) {
    assert.equal((await m.callPlugin(id, 'echo', `from ${id}`)).toString(), `from ${id}`);
  }
  assert.deepEqual((await m.plugins()).map((p) => p.id), ['text', 'buffer', 'u8', 'snake']);
});

test('register by .wat file path: a changed file is used by the next add', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'hot.wat');
  fs.writeFileSync(file, onAdd({ content: 'version one' }));
  const m = await open(t);
  const info = await m.registerPlugin({ id: 'hot', path: file });
  assert.equal(info.path, file);
  assert.deepEqual(info.hooks, ['on_add']);
  const first = await m.add('a', { userId: 'u' });
  assert.equal((await m.get(first.id)).content, 'version one');

  fs.writeFileSync(file, onAdd({ content: 'version two, longer' }));
  // A later modification time, whatever the file system's clock granularity.
  const later = new Date(Date.now() + 5000);
  fs.utimesSync(file, later, later);
  const second = await m.add('b', { userId: 'u' });
  assert.equal((await m.get(second.id)).content, 'version two, longer');
  const [now] = await m.plugins();
  assert.equal(now.stats.loads, 2);
  assert.equal(now.stats.reloads, 1);
  assert.ok(now.log.some((l) => l.message.includes('reloaded')), JSON.stringify(now.log));

  // unload / load / reload by hand.
  assert.equal((await m.unloadPlugin('hot')).loaded, false);
  assert.equal((await m.loadPlugin('hot')).loaded, true);
  fs.writeFileSync(file, onAdd({ content: 'version three' }));
  const reloaded = await m.reloadPlugin('hot');
  assert.equal(reloaded.loaded, true);
  const third = await m.add('c', { userId: 'u' });
  assert.equal((await m.get(third.id)).content, 'version three');
  // A plugin not used any more.
  await m.unregisterPlugin('hot');
  assert.deepEqual(await m.plugins(), []);
  const fourth = await m.add('d', { userId: 'u' });
  assert.equal((await m.get(fourth.id)).content, 'd');
});

// ------------------------------------------------------------------------------- hooks

test('on_add rewrites the content and metadata before storing', async (t) => {
  const m = await open(t);
  await m.registerPlugin(
    { id: 'rewrite' },
    onAdd({ content: 'rewritten by wasm', metadata: { checked: true } }),
  );
  const { id } = await m.add('original text', { userId: 'alice', metadata: { source: 'chat' } });
  const stored = await m.get(id);
  assert.equal(stored.content, 'rewritten by wasm');
  assert.deepEqual(stored.metadata, { checked: true });
  const hits = await m.search('rewritten', { userId: 'alice', mode: 'keyword' });
  assert.deepEqual(hits.map((h) => h.id), [id]);
  assert.deepEqual(await m.search('original', { userId: 'alice', mode: 'keyword' }), []);
});

test('on_add reject: add rejects with PluginError and the reason, nothing is stored', async (t) => {
  const m = await open(t);
  await m.registerPlugin({ id: 'guard' }, onAdd({ reject: 'contains a secret' }));
  const e = await rejects(
    m.add('my password is hunter2', { userId: 'alice' }),
    'AM_PLUGIN',
    'guard',
    'contains a secret',
  );
  assert.ok(e instanceof am.PluginError);
  await rejects(m.addBatch(['one', 'two']), 'AM_PLUGIN', 'contains a secret');
  assert.equal(await m.count(), 0);
  assert.equal(await m.count({ userId: 'alice' }), 0);
  const [info] = await m.plugins();
  assert.ok(info.stats.calls >= 2);
});

test('after_search reorders, rescores and drops hits by id, but cannot add one', async (t) => {
  const m = await open(t);
  const a = (await m.add('coffee in the morning', { userId: 'u' })).id;
  const b = (await m.add('coffee after lunch', { userId: 'u' })).id;
  const c = (await m.add('coffee at night', { userId: 'u' })).id;
  const before = await m.search('coffee', { userId: 'u', mode: 'keyword' });
  assert.deepEqual(new Set(before.map((h) => h.id)), new Set([a, b, c]));

  await m.registerPlugin(
    { id: 'rerank' },
    one('after_search', { reply: JSON.stringify({ hits: [{ id: c, score: 0.99 }, { id: a }] }) }),
  );
  const hits = await m.search('coffee', { userId: 'u', mode: 'keyword' });
  assert.deepEqual(hits.map((h) => h.id), [c, a]);
  // Scores are f32 in the core.
  assert.ok(Math.abs(hits[0].score - 0.99) < 1e-6, String(hits[0].score));
  assert.equal(hits[1].score, before.find((h) => h.id === a).score);
  assert.equal(hits[0].content, 'coffee at night');

  await m.unregisterPlugin('rerank');
  await m.registerPlugin(
    { id: 'inject' },
    one('after_search', { reply: JSON.stringify({ hits: [{ id: '00000000-0000-0000-0000-000000000000' }] }) }),
  );
  await rejects(m.search('coffee', { userId: 'u', mode: 'keyword' }), 'AM_PLUGIN', 'was not in the results');
});

// ------------------------------------------------------------------------------- callPlugin

test('callPlugin: Buffer in and out, strings as UTF-8, empty input', async (t) => {
  const m = await open(t);
  await m.registerPlugin({ id: 'echo', kind: 'function' }, ECHO);
  const bytes = Buffer.from([0, 1, 2, 255, 254, 0, 10]);
  const out = await m.callPlugin('echo', 'echo', bytes);
  assert.ok(Buffer.isBuffer(out));
  assert.deepEqual(out, bytes);
  const text = await m.callPlugin('echo', 'echo', 'héllo wörld ☕ 咖啡');
  assert.ok(Buffer.isBuffer(text));
  assert.equal(text.toString('utf8'), 'héllo wörld ☕ 咖啡');
  const view = new Uint8Array([9, 8, 7, 6]).subarray(1, 3);
  assert.deepEqual([...(await m.callPlugin('echo', 'echo', view))], [8, 7]);
  assert.equal((await m.callPlugin('echo', 'echo')).length, 0);
  assert.equal((await m.callPlugin('echo', 'echo', null, { userId: 'u' })).length, 0);
  // The input is copied when the call starts: changing the Buffer afterwards changes nothing.
  const mutable = Buffer.from('before');
  const pending = m.callPlugin('echo', 'echo', mutable);
  mutable.write('AFTER!');
  assert.equal((await pending).toString(), 'before');
  const [info] = await m.plugins();
  assert.equal(info.stats.calls, 6);
});

test('host functions see only the scope of the call', async (t) => {
  const m = await open(t);
  const alice = (await m.add('alice drinks coffee', { userId: 'alice' })).id;
  const bob = (await m.add('bob drinks coffee', { userId: 'bob' })).id;
  const everyone = (await m.add('everyone drinks coffee')).id;
  await m.registerPlugin(
    { id: 'finder', kind: 'function', capabilities: ['search'] },
    one('find', { host: 'am_search' }),
  );
  const request = JSON.stringify({ query: 'coffee', mode: 'keyword', limit: 10 });
  const found = async (scope) =>
    JSON.parse((await m.callPlugin('finder', 'find', request, scope)).toString()).results.map((h) => h.id);
  assert.deepEqual(await found({ userId: 'alice' }), [alice]);
  assert.deepEqual(await found({ userId: 'bob' }), [bob]);
  assert.deepEqual(await found({ userId: 'carol' }), []);
  assert.deepEqual(await found(), [everyone]);
  // A filter in the request cannot widen the scope.
  const sneaky = JSON.stringify({ query: 'coffee', mode: 'keyword', filters: { user_id: 'bob' } });
  const out = JSON.parse((await m.callPlugin('finder', 'find', sneaky, { userId: 'alice' })).toString());
  assert.deepEqual(out.results, []);
});

test('a host function whose capability was not granted: PermissionDeniedError', async (t) => {
  const m = await open(t);
  await m.add('alice drinks coffee', { userId: 'alice' });
  await m.registerPlugin({ id: 'nosy', kind: 'function', capabilities: ['logging'] }, one('find', { host: 'am_search' }));
  const e = await rejects(
    m.callPlugin('nosy', 'find', JSON.stringify({ query: 'coffee' }), { userId: 'alice' }),
    'AM_PERMISSION_DENIED',
    "capability 'search' not granted to plugin 'nosy'",
  );
  assert.ok(e instanceof am.PermissionDeniedError);
  const [info] = await m.plugins();
  assert.equal(info.stats.denied, 1);
  assert.ok(info.log.some((l) => l.level === 'warn' && l.message.includes('denied')), JSON.stringify(info.log));
});

test('an infinite loop is stopped by limits.timeoutMs and the memory keeps working', async (t) => {
  const m = await open(t);
  await m.registerPlugin(
    { id: 'spin', kind: 'function', limits: { timeoutMs: 200 } },
    wat([
      ['spin', { loop: true }],
      ['echo', { echo: true }],
    ]),
  );
  const started = Date.now();
  // The loop runs off the JavaScript thread: timers keep firing meanwhile.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  await rejects(m.callPlugin('spin', 'spin', 'x'), 'AM_PLUGIN', 'timed out after 200 ms');
  clearInterval(timer);
  const elapsed = Date.now() - started;
  assert.ok(ticks >= 5, `the event loop was blocked (${ticks} ticks)`);
  assert.ok(elapsed >= 150 && elapsed < 5000, `took ${elapsed} ms`);
  // The same plugin, the store and the event loop are fine.
  assert.equal((await m.callPlugin('spin', 'echo', 'still here')).toString(), 'still here');
  const { id } = await m.add('after the loop', { userId: 'u' });
  assert.deepEqual((await m.search('loop', { userId: 'u', mode: 'keyword' })).map((h) => h.id), [id]);
  const [info] = await m.plugins();
  assert.equal(info.stats.failures, 1);
  assert.ok(info.last_error.includes('timed out'), info.last_error);

  // A looping hook with onError "skip": the add goes on without it, content unchanged.
  await m.registerPlugin(
    { id: 'slow-hook', onError: 'skip', limits: { timeoutMs: 200 } },
    one('on_add', { loop: true }),
  );
  const kept = await m.add('kept as it is', { userId: 'u' });
  assert.equal((await m.get(kept.id)).content, 'kept as it is');
  const hook = (await m.plugins()).find((p) => p.id === 'slow-hook');
  assert.equal(hook.stats.failures, 1);
  // With the default "fail" policy the add fails and stores nothing.
  await m.unregisterPlugin('slow-hook');
  await m.registerPlugin({ id: 'strict-hook', limits: { timeoutMs: 200 } }, one('on_add', { loop: true }));
  await rejects(m.add('never stored', { userId: 'u' }), 'AM_PLUGIN', 'timed out');
  assert.equal(await m.count({ userId: 'u' }), 2);
});

test('a trap fails the call cleanly; the next call works', async (t) => {
  const m = await open(t);
  await m.registerPlugin(
    { id: 'fragile', kind: 'function' },
    wat([
      ['boom', { trap: true }],
      ['echo', { echo: true }],
    ]),
  );
  await rejects(m.callPlugin('fragile', 'boom'), 'AM_PLUGIN', 'trapped');
  assert.equal((await m.callPlugin('fragile', 'echo', 'ok')).toString(), 'ok');
});

// ------------------------------------------------------------------------------- errors

test('malformed modules and manifests get clear errors and register nothing', async (t) => {
  const m = await open(t);
  await rejects(m.registerPlugin({ id: 'bad' }, 'this is not wasm'), 'AM_PLUGIN', 'not a WebAssembly module', '"bad"');
  await rejects(m.registerPlugin({ id: 'bad' }, Buffer.alloc(0)), 'AM_PLUGIN', 'not a WebAssembly module');
  await rejects(
    m.registerPlugin({ id: 'bad' }, Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xff, 0xff])),
    'AM_PLUGIN',
    'cannot be loaded',
  );
  await rejects(m.registerPlugin({ id: 'bad' }, '(module (func (export "on_add")'), 'AM_PLUGIN', 'cannot be loaded');
  await rejects(m.registerPlugin({ id: 'bad' }, ECHO), 'AM_PLUGIN', 'exports none of on_add, before_search, after_search');
  const missing = path.join(tempDir(t), 'missing.wasm');
  await rejects(m.registerPlugin({ id: 'bad', path: missing }), 'AM_IO', missing);

  // Manifests the core refuses.
  await rejects(m.registerPlugin({ id: 'x', kind: 'daemon' }, ECHO), 'AM_INVALID_INPUT', 'daemon');
  await rejects(m.registerPlugin({ id: 'x', capabilities: ['root'] }, ECHO), 'AM_INVALID_INPUT', 'root');
  await rejects(m.registerPlugin({ id: 'x', limits: { timeoutMs: 0 } }, ECHO), 'AM_INVALID_INPUT', 'timeout_ms');
  await rejects(m.registerPlugin({ id: 'x', mystery: 1 }, ECHO), 'AM_INVALID_INPUT', 'mystery');
  await rejects(m.registerPlugin({ id: 'has space' }, ECHO), 'AM_INVALID_INPUT');
  await rejects(m.registerPlugin({ id: 'x', path: missing }, ECHO), 'AM_INVALID_INPUT', 'not both');
  await rejects(m.registerPlugin({ id: 'x' }), 'AM_INVALID_INPUT', 'path');
  assert.deepEqual(await m.plugins(), []);
  await m.add('still fine', { userId: 'u' });

  // Wrong types: TypeErrors before anything reaches the core.
  await assert.rejects(m.registerPlugin('x', ECHO), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(m.registerPlugin({ id: 'x' }, 42), { name: 'TypeError', message: /wasm must be a Buffer/ });
  await assert.rejects(m.registerPlugin({ id: 5 }, ECHO), { name: 'TypeError', message: /manifest\.id/ });
  await assert.rejects(m.registerPlugin({ id: 'x', limits: { timeoutMs: 'soon' } }, ECHO), {
    name: 'TypeError',
    message: /manifest\.limits\.timeoutMs/,
  });
  await assert.rejects(m.registerPlugin({ id: 'x', capabilities: 'search' }, ECHO), {
    name: 'TypeError',
    message: /manifest\.capabilities must be an array/,
  });
  await assert.rejects(m.callPlugin('x', 'echo', 42), { name: 'TypeError', message: /input must be/ });
  await assert.rejects(m.callPlugin('x', 'echo', 'in', { userId: 7 }), { name: 'TypeError', message: /scope\.userId/ });
  await assert.rejects(m.callPlugin(1, 'echo'), { name: 'TypeError' });
});

test('unknown plugin ids and exports: NotFoundError', async (t) => {
  const m = await open(t);
  for (const call of [
    () => m.callPlugin('ghost', 'echo', 'x'),
    () => m.loadPlugin('ghost'),
    () => m.unloadPlugin('ghost'),
    () => m.reloadPlugin('ghost'),
    () => m.unregisterPlugin('ghost'),
  ]) {
    const e = await rejects(call(), 'AM_NOT_FOUND', 'ghost');
    assert.ok(e instanceof am.NotFoundError);
  }
  await m.registerPlugin({ id: 'echo', kind: 'function' }, ECHO);
  await rejects(m.callPlugin('echo', 'launch_missiles'), 'AM_NOT_FOUND', 'launch_missiles');
});

test('a duplicate id: AlreadyExistsError, the first plugin stays', async (t) => {
  const m = await open(t);
  await m.registerPlugin({ id: 'dup', kind: 'function' }, ECHO);
  const e = await rejects(
    m.registerPlugin({ id: 'dup', kind: 'function' }, one('echo', { reply: 'second' })),
    'AM_ALREADY_EXISTS',
    'dup',
  );
  assert.ok(e instanceof am.AlreadyExistsError);
  assert.equal((await m.plugins()).length, 1);
  assert.equal((await m.callPlugin('dup', 'echo', 'first')).toString(), 'first');
  // Free again once unregistered.
  await m.unregisterPlugin('dup');
  await m.registerPlugin({ id: 'dup', kind: 'function' }, one('echo', { reply: 'second' }));
  assert.equal((await m.callPlugin('dup', 'echo', 'x')).toString(), 'second');
});

test('a closed memory: plugin calls reject with ClosedError', async () => {
  const m = await Memory.open(':memory:', HASHING);
  await m.registerPlugin({ id: 'echo', kind: 'function' }, ECHO);
  await m.close();
  await rejects(m.callPlugin('echo', 'echo', 'x'), 'AM_CLOSED');
  await rejects(m.plugins(), 'AM_CLOSED');
  await rejects(m.registerPlugin({ id: 'late', kind: 'function' }, ECHO), 'AM_CLOSED');
});

// ------------------------------------------------------------------------------- info, cache

test('plugins(): infos in registration order with hooks, stats and the log', async (t) => {
  const m = await open(t);
  await m.registerPlugin(
    { id: 'logger', capabilities: ['logging'] },
    wat([
      ['on_add', { log: 'hello from wasm' }],
      ['after_search', { reply: '{}' }],
    ]),
  );
  await m.registerPlugin({ id: 'fn', kind: 'function' }, ECHO);
  await m.add('{}', { userId: 'u' });
  await m.search('x', { userId: 'u', mode: 'keyword' });
  await m.callPlugin('fn', 'echo', 'x');
  await m.callPlugin('fn', 'echo', 'y');
  const [logger, fn] = await m.plugins();
  assert.equal(logger.id, 'logger');
  assert.equal(logger.kind, 'hook');
  assert.deepEqual(logger.hooks, ['on_add', 'after_search']);
  assert.deepEqual(logger.capabilities, ['logging']);
  assert.equal(logger.stats.calls, 2);
  assert.equal(logger.stats.failures, 0);
  assert.ok(logger.log.some((l) => l.level === 'info' && l.message.includes('hello from wasm')), JSON.stringify(logger.log));
  for (const line of logger.log) assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
  assert.equal(fn.id, 'fn');
  assert.equal(fn.kind, 'function');
  assert.equal(fn.stats.calls, 2);
  assert.equal(fn.last_error, undefined);
  assert.deepEqual(Object.keys(fn.stats).sort(), ['calls', 'denied', 'failures', 'loads', 'reloads']);
  // A function plugin never runs as a hook, even when it exports one.
  await m.registerPlugin({ id: 'passive', kind: 'function' }, onAdd({ reject: 'no' }));
  await m.add('not rejected', { userId: 'u' });
});

test('option plugins.cacheSize: the least recently used plugin is unloaded', async (t) => {
  await assert.rejects(Memory.open(':memory:', { ...HASHING, plugins: { cacheSize: 0 } }), {
    code: 'AM_INVALID_INPUT',
    message: /cache_size/,
  });
  await assert.rejects(Memory.open(':memory:', { ...HASHING, plugins: { cacheSize: 'big' } }), {
    name: 'TypeError',
    message: /options\.plugins\.cacheSize/,
  });
  const m = await open(t, { ...HASHING, plugins: { cacheSize: 1 } });
  await m.registerPlugin({ id: 'p1', kind: 'function' }, ECHO);
  await m.registerPlugin({ id: 'p2', kind: 'function' }, ECHO);
  assert.deepEqual((await m.plugins()).map((p) => p.loaded), [false, true]);
  // Evicted plugins still work: compiled again on use.
  assert.equal((await m.callPlugin('p1', 'echo', 'back')).toString(), 'back');
  assert.deepEqual((await m.plugins()).map((p) => p.loaded), [true, false]);
});

// ------------------------------------------------------------------------------- concurrency

test('50 concurrent callPlugin promises each get their own answer', async (t) => {
  const m = await open(t);
  await m.registerPlugin({ id: 'echo', kind: 'function' }, ECHO);
  await m.registerPlugin({ id: 'echo2', kind: 'function' }, one('echo', { echo: true }));
  const inputs = Array.from({ length: 50 }, (_, i) => `request ${i} ${'x'.repeat(i * 37)}`);
  const outputs = await Promise.all(
    inputs.map((input, i) => m.callPlugin(i % 2 ? 'echo' : 'echo2', 'echo', i % 3 ? input : Buffer.from(input))),
  );
  assert.deepEqual(outputs.map((o) => o.toString()), inputs);
  const stats = (await m.plugins()).map((p) => p.stats.calls);
  assert.deepEqual(stats, [25, 25]);
});

// ------------------------------------------------------------------------------- the examples

function example(name) {
  const dir =
    process.env.AGENTMEM_EXAMPLE_PLUGINS ||
    path.join(__dirname, '..', '..', 'target', 'wasm32-unknown-unknown', 'release');
  const file = path.join(dir, `${name}.wasm`);
  return fs.existsSync(file) ? file : null;
}

test('example pii_redactor.wasm, registered by path, redacts on add', async (t) => {
  const file = example('pii_redactor');
  if (!file) {
    const why = `pii_redactor.wasm not built (examples/plugins/build.sh needs the wasm32-unknown-unknown target)`;
    console.log(`SKIPPED: ${why}`);
    t.skip(why);
    return;
  }
  const m = await open(t);
  const info = await m.registerPlugin({
    id: 'pii',
    path: file,
    capabilities: ['config', 'logging'],
    config: { log: 'true' },
  });
  assert.deepEqual(info.hooks, ['on_add']);
  const { id } = await m.add('Mail bob@example.com', { userId: 'bob' });
  assert.equal((await m.get(id)).content, 'Mail [email]');
  const [after] = await m.plugins();
  assert.ok(after.log.some((l) => l.message.includes('pii_redactor: redacted')), JSON.stringify(after.log));
});
