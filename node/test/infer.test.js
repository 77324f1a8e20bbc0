'use strict';
// Memory.addMessages end to end: a real HTTP server in this process (node:http on 127.0.0.1)
// plays an OpenAI-compatible provider, with replies scripted per test in the wire format of
// the Chat Completions API; the store is real (SQLite, HNSW, the hashing embedder).

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');

const am = require('..');
const { Memory, LlmError, InvalidInputError } = am;

const MODEL = 'gpt-4.1-nano';
const ACTOR = `llm:openai:${MODEL}`;

/** A 200 `chat.completion` whose first choice says `content`, as OpenAI sends it. */
function chat(content) {
  return {
    status: 200,
    body: {
      id: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT',
      object: 'chat.completion',
      created: 1741569952,
      model: 'gpt-4.1-nano-2025-04-14',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content, refusal: null, annotations: [] },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: {
        prompt_tokens: 412,
        completion_tokens: 17,
        total_tokens: 429,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
      },
      service_tier: 'default',
      system_fingerprint: 'fp_38343a2f8f',
    },
  };
}

const facts = (...list) => chat(JSON.stringify({ facts: list }));
const decisions = (...list) => chat(JSON.stringify({ decisions: list }));

/** An OpenAI error answer. */
function apiError(status, type, message, code = null) {
  return { status, body: { error: { message, type, param: null, code } } };
}

/**
 * Starts the fake provider: `replies` are answered in order (a reply may carry `delayMs`);
 * every request is recorded with its parsed body. Closed after the test.
 */
async function fakeProvider(t, replies) {
  const queue = [...replies];
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      requests.push({ method: req.method, path: req.url, headers: req.headers, body });
      const reply =
        queue.shift() ||
        apiError(500, 'server_error', `fake server: no scripted reply for ${req.method} ${req.url}`);
      const send = () => {
        if (res.destroyed) return; // the client gave up (a timeout)
        const payload = JSON.stringify(reply.body);
        res.writeHead(reply.status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          'x-request-id': `req_${requests.length}`,
          ...(reply.headers || {}),
        });
        res.end(payload);
      };
      if (reply.delayMs) {
        const timer = setTimeout(send, reply.delayMs);
        res.on('close', () => clearTimeout(timer));
      } else {
        send();
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  );
  const { port } = server.address();
  return { baseUrl: `http://127.0.0.1:${port}/v1`, requests, pending: () => queue.length };
}

/** A store in memory with the hashing embedder and the fake provider as its model. */
async function open(t, provider, llm = {}) {
  const m = await Memory.open(':memory:', {
    embedder: { provider: 'hashing', dimensions: 64 },
    llm: {
      provider: 'openai',
      model: MODEL,
      apiKey: 'sk-test-key',
      baseUrl: provider.baseUrl,
      timeoutMs: 5000,
      maxRetries: 0,
      ...llm,
    },
  });
  t.after(() => m.close());
  return m;
}

/** The system prompt and the user message of a recorded chat request. */
const said = (r) => ({ system: r.body.messages[0].content, user: r.body.messages[1].content });

/** Every memory, as `content` strings sorted, with their update times: "the store". */
async function snapshot(m) {
  const { items } = await m.list({ limit: 1000 });
  return items.map((r) => `${r.id} ${r.content} ${r.updated_at}`).sort();
}

test('addMessages: extracted facts are added, with one model call', async (t) => {
  const provider = await fakeProvider(t, [facts('Works as a nurse', 'Has a dog called Rex')]);
  const m = await open(t, provider);
  const events = await m.addMessages(
    [
      { role: 'user', content: "I'm a nurse, and my dog Rex waits for me after my shifts." },
      { role: 'assistant', content: 'Rex sounds lovely!' },
    ],
    { userId: 'bob', metadata: { source: 'chat' } },
  );
  assert.deepEqual(
    events.map((e) => [e.event, e.memory]),
    [
      ['ADD', 'Works as a nurse'],
      ['ADD', 'Has a dog called Rex'],
    ],
  );
  for (const e of events) {
    assert.match(e.id, /^[0-9a-f-]{36}$/);
    assert.equal('previous_memory' in e, false);
  }
  // Nothing was stored before: no decision call.
  assert.equal(provider.requests.length, 1);
  const [request] = provider.requests;
  assert.equal(request.method, 'POST');
  assert.equal(request.path, '/v1/chat/completions');
  assert.equal(request.headers.authorization, 'Bearer sk-test-key');
  assert.equal(request.body.model, MODEL);
  assert.deepEqual(request.body.response_format, { type: 'json_object' });
  assert.match(said(request).user, /user: I'm a nurse/);
  assert.match(said(request).user, /assistant: Rex sounds lovely!/);

  const record = await m.get(events[1].id);
  assert.equal(record.kind, 'semantic');
  assert.equal(record.user_id, 'bob');
  assert.deepEqual(record.metadata, { source: 'chat' });
  const [row] = await m.history(events[0].id);
  assert.equal(row.event, 'ADD');
  assert.equal(row.actor, ACTOR);
});

test('addMessages: a change of mind updates the stored memory, with previous_memory', async (t) => {
  const provider = await fakeProvider(t, [
    facts('Loves pepperoni pizza'),
    facts('Is vegetarian now, so no more pepperoni'),
    decisions({ fact: 0, event: 'UPDATE', id: '0', text: 'Loves pizza, vegetarian toppings only' }),
    facts('Loves pizza, vegetarian toppings only'),
  ]);
  const m = await open(t, provider);
  const [first] = await m.addMessages('Hi! My favourite dinner is pepperoni pizza.', {
    userId: 'alice',
  });
  assert.equal(first.event, 'ADD');

  const events = await m.addMessages(
    { role: 'user', content: "I'm vegetarian now, so no more pepperoni. Still love pizza though!" },
    { userId: 'alice' },
  );
  // The new wording supersedes the old memory, which is kept, closed and linked.
  assert.equal(events.length, 1);
  const [changed] = events;
  assert.notEqual(changed.id, first.id);
  assert.deepEqual(events, [
    {
      id: changed.id,
      memory: 'Loves pizza, vegetarian toppings only',
      event: 'UPDATE',
      previous_memory: 'Loves pepperoni pizza',
      supersedes: first.id,
      change_id: changed.change_id,
    },
  ]);
  assert.equal((await m.get(first.id)).superseded_by, changed.id);
  // One extraction and one decision call; the model saw alice's one memory as "0".
  assert.equal(provider.requests.length, 3);
  const question = JSON.parse(said(provider.requests[2]).user);
  assert.deepEqual(question.stored_memories, [{ id: '0', text: 'Loves pepperoni pizza' }]);
  assert.equal(JSON.stringify(question).includes(first.id), false);

  const history = await m.history(first.id);
  assert.deepEqual(
    history.map((h) => [h.event, h.old_content, h.new_content, h.actor, h.change_id]),
    [
      ['ADD', null, 'Loves pepperoni pizza', ACTOR, first.change_id],
      ['UPDATE', 'Loves pepperoni pizza', 'Loves pepperoni pizza', ACTOR, changed.change_id],
    ],
  );

  // The same fact again: NONE, and no decision call.
  const again = await m.addMessages('As I said: pizza, but vegetarian.', { userId: 'alice' });
  assert.deepEqual(
    again.map((e) => [e.event, e.id]),
    [['NONE', changed.id]],
  );
  assert.equal(provider.requests.length, 4);
  assert.equal(provider.pending(), 0);
});

test('addMessages: a model failure is an LlmError (AM_LLM) and changes nothing', async (t) => {
  const provider = await fakeProvider(t, [
    facts('Loves pepperoni pizza'),
    chat("{'facts': ['I'm a cellist']}"),
    facts('Plays the cello'),
    chat('I think you should update memory 0.'),
    apiError(
      401,
      'invalid_request_error',
      'Incorrect API key provided: sk-test-***-key. You can find your API key at https://platform.openai.com/account/api-keys.',
      'invalid_api_key',
    ),
  ]);
  const m = await open(t, provider);
  await m.addMessages('I love pepperoni pizza', { userId: 'alice' });
  const before = await snapshot(m);

  const failure = (pattern) => (e) => {
    assert.ok(e instanceof LlmError, `${e}`);
    assert.ok(e instanceof am.AgentMemError);
    assert.equal(e.code, 'AM_LLM');
    assert.match(e.message, pattern);
    assert.equal(e.message.includes('sk-test-key'), false, 'the key is never shown');
    return true;
  };
  await assert.rejects(
    m.addMessages("I'm a cellist", { userId: 'alice' }),
    failure(/fact extraction.*not valid JSON|not valid JSON.*fact extraction/s),
  );
  assert.deepEqual(await snapshot(m), before);

  // A good extraction, then prose for the decision: still nothing written.
  await assert.rejects(
    m.addMessages('I play the cello', { userId: 'alice' }),
    failure(/memory decisions/),
  );
  assert.deepEqual(await snapshot(m), before);

  // The provider's own message is passed on.
  await assert.rejects(
    m.addMessages('I play the cello', { userId: 'alice' }),
    failure(/Incorrect API key provided/),
  );
  assert.deepEqual(await snapshot(m), before);
  assert.equal(provider.requests.length, 5);
});

test('addMessages: a model slower than timeoutMs fails fast, the store unchanged', async (t) => {
  const provider = await fakeProvider(t, [
    { ...facts('Lives in Berlin'), delayMs: 3000 },
  ]);
  const m = await open(t, provider, { timeoutMs: 300 });
  await m.addMessages('I live in Paris', { userId: 'alice', infer: false });
  const before = await snapshot(m);
  const started = Date.now();
  await assert.rejects(m.addMessages('I moved to Berlin', { userId: 'alice' }), (e) => {
    assert.ok(e instanceof LlmError, `${e}`);
    assert.equal(e.code, 'AM_LLM');
    assert.match(e.message, /timed out/);
    return true;
  });
  const took = Date.now() - started;
  assert.ok(took < 2500, `the timeout took ${took} ms`);
  assert.deepEqual(await snapshot(m), before);
  assert.equal(provider.requests.length, 1);
});

test('addMessages: a rate limit with Retry-After is waited out', async (t) => {
  const provider = await fakeProvider(t, [
    {
      ...apiError(429, 'requests', 'Rate limit reached for gpt-4.1-nano', 'rate_limit_exceeded'),
      headers: { 'retry-after': '1' },
    },
    facts('Speaks Japanese'),
  ]);
  const m = await open(t, provider, { maxRetries: 1 });
  const started = Date.now();
  const events = await m.addMessages('私は日本語を話します', { userId: 'kenji' });
  assert.ok(Date.now() - started >= 1000);
  assert.deepEqual(
    events.map((e) => [e.event, e.memory]),
    [['ADD', 'Speaks Japanese']],
  );
  assert.equal(provider.requests.length, 2);
});

test('addMessages: infer false (or no model) stores the messages as they are', async (t) => {
  const provider = await fakeProvider(t, []);
  const m = await open(t, provider);
  const conversation = [
    { role: 'system', content: 'You are a helpful assistant' },
    { role: 'user', content: "I'm vegetarian" },
    { role: 'assistant', content: 'Noted, no meat.', name: 'chef-bot' },
  ];
  const events = await m.addMessages(conversation, { userId: 'carol', infer: false });
  assert.deepEqual(
    events.map((e) => [e.event, e.memory]),
    [
      ['ADD', "I'm vegetarian"],
      ['ADD', 'Noted, no meat.'],
    ],
  );
  assert.equal(provider.requests.length, 0, 'no model call');
  const record = await m.get(events[1].id);
  assert.equal(record.kind, 'episodic');
  assert.equal(record.metadata.role, 'assistant');
  assert.equal(record.metadata.actor_id, 'chef-bot');
  assert.equal((await m.history(record.id))[0].actor, 'user');

  // A store without a model: the same, whatever infer says; a repeat is NONE.
  const plain = await Memory.open(':memory:', { embedder: { provider: 'hashing', dimensions: 64 } });
  t.after(() => plain.close());
  const [added] = await plain.addMessages("I'm vegetarian", { userId: 'carol' });
  assert.equal(added.event, 'ADD');
  const [again] = await plain.addMessages({ role: 'user', content: "I'm vegetarian" }, {
    userId: 'carol',
  });
  assert.deepEqual([again.event, again.id], ['NONE', added.id]);
});

test('addMessages: options map onto the request, bad input is refused before any call', async (t) => {
  const provider = await fakeProvider(t, [facts('Likes sushi')]);
  const m = await open(t, provider);
  const expires = new Date('2031-05-01T00:00:00Z');
  const [event] = await m.addMessages('I like sushi', {
    agentId: 'chef',
    runId: 'r1',
    orgId: 'acme',
    kind: 'knowledge',
    metadata: { topic: 'food' },
    expiresAt: expires,
    prompt: 'Extract only food facts. Answer {"facts": [...]}.',
  });
  assert.equal(said(provider.requests[0]).system, 'Extract only food facts. Answer {"facts": [...]}.');
  const record = await m.get(event.id);
  assert.deepEqual(
    [record.agent_id, record.run_id, record.org_id, record.kind, record.metadata.topic],
    ['chef', 'r1', 'acme', 'knowledge', 'food'],
  );
  assert.equal(new Date(record.expires_at).getTime(), expires.getTime());

  const invalid = (pattern) => (e) => {
    assert.ok(e instanceof InvalidInputError, `${e}`);
    assert.equal(e.code, 'AM_INVALID_INPUT');
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
  await assert.rejects(m.addMessages('I like tea'), invalid(/scope/));
  await assert.rejects(m.addMessages([], { userId: 'u' }), invalid());
  await assert.rejects(m.addMessages({ role: 'wizard', content: 'hi' }, { userId: 'u' }), invalid());
  await assert.rejects(m.addMessages({ role: 'user', text: 'hi' }, { userId: 'u' }), invalid(/text/));
  await assert.rejects(m.addMessages('hi', { userId: 'u', prompt: '  ' }), invalid());
  await assert.rejects(m.addMessages('hi', { userId: 'u', usr: 'x' }), invalid(/usr/));
  const typeError = (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE';
  await assert.rejects(m.addMessages(42, { userId: 'u' }), typeError);
  await assert.rejects(m.addMessages(['hi'], { userId: 'u' }), typeError);
  await assert.rejects(m.addMessages('hi', { userId: 'u', infer: 'no' }), typeError);
  await assert.rejects(m.addMessages('hi', { userId: 'u', messages: 'x' }), TypeError);
  assert.equal(provider.requests.length, 1);
  assert.equal(await m.count(), 1);
});

test('open: llm, prompts and a remote embedder are checked without a network call', async (t) => {
  const provider = await fakeProvider(t, []);
  const ok = await Memory.open(':memory:', {
    embedder: {
      provider: 'openai',
      model: 'text-embedding-3-small',
      apiKey: 'sk-emb',
      baseUrl: provider.baseUrl,
      dimensions: 8,
    },
    llm: { provider: 'openai_compatible', model: 'qwen2.5', baseUrl: provider.baseUrl },
    prompts: { factExtraction: 'Facts, please. Today is {today}.', procedural: 'Summarise.' },
  });
  assert.equal(ok.embeddingModel, 'openai:text-embedding-3-small@8');
  await ok.close();
  assert.equal(provider.requests.length, 0);

  for (const options of [
    { llm: { provider: 'skynet' } },
    { llm: { provider: 'openai', modle: 'x' } },
    { llm: { provider: 'openai_compatible', model: 'm' } }, // no base URL
    { llm: { provider: 'openai', apiKey: 'k', temperature: 5 } },
    { prompts: { factExtraction: '' } },
    { prompts: { facts: 'x' } },
    { embedder: { provider: 'anthropic' } },
  ]) {
    await assert.rejects(Memory.open(':memory:', options), (e) => {
      assert.ok(e instanceof InvalidInputError, `${JSON.stringify(options)}: ${e}`);
      return true;
    });
  }
  await assert.rejects(Memory.open(':memory:', { llm: { provider: 'openai', timeoutMs: '5s' } }), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
});

test('a remote embedder (OpenAI embeddings API) serves add and search', async (t) => {
  const embedding = (vector) => ({ object: 'embedding', index: 0, embedding: vector });
  const embeddings = (vector) => ({
    status: 200,
    body: {
      object: 'list',
      data: [embedding(vector)],
      model: 'text-embedding-3-small',
      usage: { prompt_tokens: 3, total_tokens: 3 },
    },
  });
  const provider = await fakeProvider(t, [
    embeddings([0.9, 0.1, 0, 0]),
    embeddings([0, 0, 0.2, 0.8]),
    embeddings([0.8, 0.2, 0, 0]),
  ]);
  const m = await Memory.open(':memory:', {
    embedder: {
      provider: 'openai',
      model: 'text-embedding-3-small',
      apiKey: 'sk-emb',
      baseUrl: provider.baseUrl,
      dimensions: 4,
      maxRetries: 0,
    },
  });
  t.after(() => m.close());
  await m.add('Likes tea', { userId: 'u' });
  await m.add('Plays chess', { userId: 'u' });
  const [hit] = await m.search('hot drinks', { userId: 'u', mode: 'vector', limit: 1 });
  assert.equal(hit.content, 'Likes tea');
  assert.deepEqual(
    provider.requests.map((r) => [r.path, r.headers.authorization, r.body.model, r.body.input]),
    [
      ['/v1/embeddings', 'Bearer sk-emb', 'text-embedding-3-small', ['Likes tea']],
      ['/v1/embeddings', 'Bearer sk-emb', 'text-embedding-3-small', ['Plays chess']],
      ['/v1/embeddings', 'Bearer sk-emb', 'text-embedding-3-small', ['hot drinks']],
    ],
  );
  assert.equal(provider.requests[0].body.dimensions, 4);
});
