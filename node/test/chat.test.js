'use strict';
// Memory.chat, chatStream and remembered end to end: the fake model server of the repository
// (tests/fake_llm.py, in its command-line form) plays an OpenAI-compatible provider that
// answers — and streams — scripted replies and logs every request it receives; the store is
// real (SQLite, HNSW, the hashing embedder).

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');

const am = require('..');
const { Memory, AgentMemError } = am;

const FAKE_LLM = path.join(__dirname, '..', '..', 'tests', 'fake_llm.py');
const PYTHON = process.env.PYTHON || 'python3';
const HASHING = { embedder: { provider: 'hashing', dimensions: 64 } };
const NO_FACTS = { openai_chat: JSON.stringify({ facts: [] }) };

/**
 * Starts tests/fake_llm.py with `replies` (its script forms, answered in order); stopped
 * after the test. `requests()` reads the requests it received from its log.
 */
async function fakeServer(t, replies) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent_mem-chat-'));
  const script = path.join(dir, 'replies.json');
  const portFile = path.join(dir, 'port.txt');
  const log = path.join(dir, 'requests.jsonl');
  fs.writeFileSync(script, JSON.stringify(replies));
  const child = spawn(PYTHON, [FAKE_LLM, '--script', script, '--port-file', portFile, '--log', log], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.after(async () => {
    child.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const started = Date.now();
  while (!fs.existsSync(portFile)) {
    if (child.exitCode !== null) assert.fail(`the fake model server exited (${child.exitCode})`);
    if (Date.now() - started > 20_000) assert.fail('the fake model server did not start');
    await sleep(20);
  }
  const port = Number(fs.readFileSync(portFile, 'utf8').trim());
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests: () =>
      fs.existsSync(log)
        ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
        : [],
  };
}

/** A store in memory with the hashing embedder and the fake server as its chat model. */
async function open(t, server) {
  const m = await Memory.open(':memory:', {
    ...HASHING,
    llm: { provider: 'openai', model: 'm', apiKey: 'k', baseUrl: server.baseUrl, maxRetries: 0, timeoutMs: 10_000 },
  });
  t.after(() => m.close());
  return m;
}

/** The system prompt of a logged chat-completions request. */
const systemOf = (request) => request.body.messages[0].content;
const isChat = (request) => systemOf(request).includes('long-term memory of the person');

/** `promise` rejects with the error class of `code`, carrying that code. */
async function rejectsWith(promise, code, pattern) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof AgentMemError, `${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

/** Reads a stream to its end: its pieces. */
async function pieces(stream) {
  const out = [];
  for await (const piece of stream) out.push(piece);
  return out;
}

/** A long answer in many deltas, streamed slowly: time enough to stop it part way. */
const SLOW = { openai_stream: Array.from({ length: 60 }, (_, i) => `word${i} `), chunk_delay_ms: 100 };

// ------------------------------------------------------------------------------- chat

test('chat: the answer, the memories it was given, its citations, the turn remembered', async (t) => {
  const answer = 'You are allergic to peanuts [1], so skip the satay [7].';
  const server = await fakeServer(t, [{ openai_chat: answer }, NO_FACTS]);
  const m = await open(t, server);
  const { id: peanuts } = await m.add('Alice is allergic to peanuts', { userId: 'alice' });
  await m.add('Alice lives in Lisbon', { userId: 'alice' });
  await m.add('Bob is allergic to shellfish', { userId: 'bob' });

  const reply = await m.chat('What am I allergic to?', { userId: 'alice', runId: 's1', limit: 3, mode: 'keyword' });
  assert.equal(reply.answer, answer);
  assert.match(reply.model, /\bm$/);
  assert.equal(reply.memories_used.length, 1, JSON.stringify(reply.memories_used));
  const [used] = reply.memories_used;
  assert.deepEqual(
    { ref: used.ref, id: used.id, content: used.content, kind: used.kind, source: used.source },
    { ref: 1, id: peanuts, content: 'Alice is allergic to peanuts', kind: 'episodic', source: 'search' },
  );
  assert.equal(typeof used.score, 'number');
  // [7] was never listed: dropped.
  assert.deepEqual(reply.citations, [{ ref: 1, id: peanuts }]);
  assert.deepEqual(reply.remember, { status: 'done', events: [] });
  const turn = await m.get(reply.working_memory_id);
  assert.equal(turn.kind, 'working');
  assert.equal(turn.run_id, 's1');

  // What the model was told: the recalled memory, nothing of Bob's.
  const sent = server.requests();
  assert.equal(sent.length, 2);
  assert.ok(isChat(sent[0]));
  assert.notEqual(sent[0].body.stream, true);
  assert.match(systemOf(sent[0]), /\[1\] Alice is allergic to peanuts/);
  assert.equal(sent[0].body.messages.at(-1).content, 'What am I allergic to?');
  for (const request of sent) assert.doesNotMatch(JSON.stringify(request.body), /shellfish|Bob/);
});

test('chat: the next turn of the session recalls the previous one as working memory', async (t) => {
  const server = await fakeServer(t, [{ openai_chat: 'Hello Ana!' }, { openai_chat: 'You said you are Ana [1].' }]);
  const m = await open(t, server);
  const first = await m.chat({ role: 'user', content: 'I am Ana' }, { userId: 'ana', runId: 's', remember: 'off' });
  assert.deepEqual(first.remember, { status: 'off', events: [] });
  const second = await m.chat(
    [
      { role: 'user', content: 'I am Ana' },
      { role: 'assistant', content: 'Hello Ana!' },
      { role: 'user', content: 'Who am I?' },
    ],
    {
      userId: 'ana',
      runId: 's',
      remember: 'off',
      sessionWindow: 2,
      queryTurns: 2,
      workingTtlSeconds: 60,
      maxMemoryTokens: 500,
    },
  );
  const working = second.memories_used.find((u) => u.source === 'working');
  assert.equal(working.id, first.working_memory_id);
  assert.deepEqual(second.citations, [{ ref: working.ref, id: working.id }]);
  const turn = await m.get(first.working_memory_id);
  assert.ok(turn.expires_at, 'a turn kept as working memory expires');
});

// ------------------------------------------------------------------------------- chatStream

// Cyrillic, CJK, accents and emoji: split into pieces of 3 bytes, the server's writes cut
// characters in the middle.
const TEXT = 'Ты любишь 抹茶 и café ☕ — 乾杯! 🍵 Приятного аппетита.';
const DELTAS = TEXT.match(/.{1,5}/gu);

test('chatStream: the pieces join to the answer chat gives, cut at any byte', async (t) => {
  const server = await fakeServer(t, [
    { openai_chat: TEXT },
    { openai_stream: DELTAS, split: 3, chunk_delay_ms: 1 },
  ]);
  const m = await open(t, server);
  await m.add('Le thé vert est préféré 抹茶', { userId: 'zoé' });
  const options = { userId: 'zoé', remember: 'off', sessionWindow: 0 };
  const whole = await m.chat('Что я люблю? 抹茶', options);

  const stream = m.chatStream('Что я люблю? 抹茶', options);
  const got = await pieces(stream);
  assert.ok(got.length > 1, `${got.length} pieces`);
  assert.equal(got.join(''), whole.answer);
  assert.equal(whole.answer, TEXT);
  const reply = await stream.result;
  assert.equal(reply.answer, TEXT);
  assert.deepEqual(
    reply.memories_used.map((u) => u.content),
    whole.memories_used.map((u) => u.content),
  );
  const [, streamed] = server.requests();
  assert.equal(streamed.body.stream, true);
});

test('chatStream: result alone, without reading the pieces', async (t) => {
  const server = await fakeServer(t, [{ openai_stream: ['Just ', 'the ', 'result'] }, NO_FACTS]);
  const m = await open(t, server);
  const reply = await m.chatStream('Hi', { userId: 'u' }).result;
  assert.equal(reply.answer, 'Just the result');
  assert.equal(reply.remember.status, 'done');
});

test('chatStream: an AbortSignal stops the stream at once and stores nothing', async (t) => {
  const server = await fakeServer(t, [SLOW, NO_FACTS]);
  const m = await open(t, server);
  await m.add('Alice likes slow answers', { userId: 'alice' });
  const before = await m.count();
  const controller = new AbortController();
  const stream = m.chatStream('Tell me a long story', { userId: 'alice', signal: controller.signal });
  const got = [];
  let abortedAt = 0;
  await assert.rejects(
    (async () => {
      for await (const piece of stream) {
        got.push(piece);
        if (got.length === 2) {
          abortedAt = Date.now();
          controller.abort();
        }
      }
    })(),
    (e) => {
      assert.ok(e instanceof am.CancelledError, `${e}`);
      assert.equal(e.code, 'AM_CANCELLED');
      assert.equal(e.cause?.name, 'AbortError');
      return true;
    },
  );
  assert.ok(Date.now() - abortedAt < 500, `the iteration ended ${Date.now() - abortedAt} ms after the abort`);
  assert.deepEqual(got, ['word0 ', 'word1 ']);
  // The core call stops at its next piece, long before the stream's 6 s.
  await rejectsWith(stream.result, 'AM_CANCELLED');
  assert.ok(Date.now() - abortedAt < 3_000, `the call ended ${Date.now() - abortedAt} ms after the abort`);
  assert.equal(await m.count(), before);
  assert.equal(server.requests().length, 1, 'nothing was remembered');
});

test('chatStream: leaving a for-await loop early cancels the call', async (t) => {
  const server = await fakeServer(t, [SLOW, NO_FACTS]);
  const m = await open(t, server);
  const before = await m.count();
  const stream = m.chatStream('Tell me a long story', { userId: 'alice' });
  let first = null;
  for await (const piece of stream) {
    first = piece;
    break;
  }
  assert.equal(first, 'word0 ');
  const broke = Date.now();
  await rejectsWith(stream.result, 'AM_CANCELLED');
  assert.ok(Date.now() - broke < 3_000, `the call ended ${Date.now() - broke} ms after the break`);
  assert.deepEqual(await stream.next(), { value: undefined, done: true });
  assert.equal(await m.count(), before);
});

test('chatStream: cancel() and an already aborted signal', async (t) => {
  const server = await fakeServer(t, [SLOW]);
  const m = await open(t, server);
  const stream = m.chatStream('Go on', { userId: 'u' });
  assert.equal((await stream.next()).value, 'word0 ');
  stream.cancel();
  await rejectsWith(stream.next(), 'AM_CANCELLED');
  await rejectsWith(stream.result, 'AM_CANCELLED');

  const aborted = m.chatStream('Go on', { userId: 'u', signal: AbortSignal.abort() });
  await rejectsWith(pieces(aborted), 'AM_CANCELLED');
  await rejectsWith(aborted.result, 'AM_CANCELLED');
  assert.equal(await m.count(), 0);
  assert.equal(server.requests().length, 1, 'an aborted stream never reaches the model');
});

test('chatStream: a stream cut by the server is an LlmError and stores nothing', async (t) => {
  const server = await fakeServer(t, [
    { openai_stream: ['Hello ', 'there ', 'friend'], cut_after: 2 },
    { openai_stream_error: ['Hel'], message: 'the model is overloaded' },
  ]);
  const m = await open(t, server);
  const got = [];
  const cut = m.chatStream('Hi', { userId: 'u' });
  await rejectsWith(
    (async () => {
      for await (const piece of cut) got.push(piece);
    })(),
    'AM_LLM',
  );
  assert.ok(!got.join('').includes('friend'), got.join(''));
  await rejectsWith(cut.result, 'AM_LLM');

  const failed = m.chatStream('Hi', { userId: 'u' });
  await rejectsWith(failed.result, 'AM_LLM', /overloaded/);
  assert.equal(await m.count(), 0);
});

// ------------------------------------------------------------------------------- remembering

test('remember in the background: remembered waits for the outcome, handed out once', async (t) => {
  const server = await fakeServer(t, [
    { openai_chat: 'Green tea it is.' },
    { openai_chat: JSON.stringify({ facts: ['Loves green tea'] }), delay_ms: 200 },
  ]);
  const m = await open(t, server);
  const reply = await m.chat('I love green tea', { userId: 'carol', remember: 'background', sessionWindow: 0 });
  assert.equal(reply.answer, 'Green tea it is.');
  assert.equal(reply.working_memory_id, undefined);
  assert.equal(reply.remember.status, 'running');
  assert.equal(typeof reply.remember.handle, 'string');

  const outcome = await m.remembered(reply.remember.handle, { wait: true });
  assert.equal(outcome.status, 'done');
  assert.deepEqual(
    outcome.events.map((e) => [e.event, e.memory]),
    [['ADD', 'Loves green tea']],
  );
  await rejectsWith(m.remembered(reply.remember.handle), 'AM_NOT_FOUND');
  await rejectsWith(m.remembered('no-such-handle', { wait: true }), 'AM_NOT_FOUND');
  assert.equal(await m.count({ userId: 'carol' }), 1);
});

// ------------------------------------------------------------------------------- refusals

test('bad requests are refused before any model call, nothing stored', async (t) => {
  const server = await fakeServer(t, []);
  const m = await open(t, server);
  await rejectsWith(m.chat([], { userId: 'u' }), 'AM_INVALID_INPUT', /empty/);
  await rejectsWith(
    m.chat([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }], { userId: 'u' }),
    'AM_INVALID_INPUT',
    /last message/,
  );
  await rejectsWith(m.chat('Hi', { userId: 'u', maxMemoryTokens: 0 }), 'AM_INVALID_INPUT', /max_memory_tokens/);
  await rejectsWith(m.chat('Hi'), 'AM_INVALID_INPUT', /scope/);
  await rejectsWith(m.chat('Hi', { userId: 'u', remember: 'later' }), 'AM_INVALID_INPUT');
  await rejectsWith(m.chat('Hi', { userId: 'u', limt: 3 }), 'AM_INVALID_INPUT', /limt/);
  await rejectsWith(m.chatStream([], { userId: 'u' }).result, 'AM_INVALID_INPUT');
  await rejectsWith(pieces(m.chatStream('Hi', { userId: 'u', maxMemoryTokens: 0 })), 'AM_INVALID_INPUT');

  // Type errors come before the core: thrown by chatStream, rejected by chat.
  await assert.rejects(m.chat(42, { userId: 'u' }), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(m.chat('Hi', { userId: 'u', limit: '3' }), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => m.chatStream('Hi', { userId: 'u', signal: 'stop' }), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => m.chatStream(null), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(m.remembered(7), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(m.remembered('h', { wait: 'yes' }), { code: 'ERR_INVALID_ARG_TYPE' });

  assert.equal(server.requests().length, 0);
  assert.equal(await m.count(), 0);
});

test('without a chat model: UnsupportedError; on a closed store: ClosedError', async () => {
  const m = await Memory.open(':memory:', HASHING);
  await rejectsWith(m.chat('Hi', { userId: 'u' }), 'AM_UNSUPPORTED', /chat model/);
  const stream = m.chatStream('Hi', { userId: 'u' });
  await rejectsWith(pieces(stream), 'AM_UNSUPPORTED');
  await rejectsWith(stream.result, 'AM_UNSUPPORTED');
  await m.close();
  await rejectsWith(m.chat('Hi', { userId: 'u' }), 'AM_CLOSED');
  await rejectsWith(m.chatStream('Hi', { userId: 'u' }).result, 'AM_CLOSED');
  await rejectsWith(m.remembered('h'), 'AM_CLOSED');
});
