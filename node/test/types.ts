// Usage of the public API, type-checked with `tsc -p test/tsconfig.json` (strict, no emit):
// the declarations in index.d.ts must accept the calls a TypeScript user writes and refuse
// the wrong ones (each @ts-expect-error must see an error, or tsc fails).

import {
  Memory,
  AgentMemError,
  NotFoundError,
  InvalidInputError,
  VectorIndexError,
  errorCodes,
  addonVersion,
  type AddResult,
  type Entity,
  type EntityDetail,
  type Graph,
  type Neighbor,
  type Relation,
  type RelationAdded,
  type CopyReport,
  type ErrorCode,
  type HistoryEntry,
  type LlmOptions,
  type Message,
  type MemoryEvent,
  type ListPage,
  type MemoryRecord,
  type OpenOptions,
  type PluginCapability,
  type PluginInfo,
  type PluginManifest,
  type PostgresOptions,
  type SearchHit,
  PluginError,
  PermissionDeniedError,
  CancelledError,
  type AbortSignalLike,
  type ChatOptions,
  type ChatReply,
  type ChatStream,
  type Citation,
  type MemoryUsed,
  type Remembered,
} from '..';

export async function usage(): Promise<string[]> {
  const options: OpenOptions = {
    embedder: { provider: 'hashing', dimensions: 64 },
    persistIndex: false,
    index: { connectivity: 16, expansionAdd: 64, quantization: 'i8' },
    search: { mode: 'hybrid', limit: 5, threshold: null, weights: { vector: 1, keyword: 1, rrfK: 60 } },
  };
  const memory: Memory = await Memory.open(':memory:', options);
  await Memory.open('memories.db');
  await Memory.open(':memory:', { embedder: 'none' });
  await Memory.open(':memory:', { embedder: { provider: 'local', modelDir: '/models/minilm' } });
  const llm: LlmOptions = {
    provider: 'openai',
    model: 'gpt-4.1-nano',
    apiKey: 'sk-…',
    baseUrl: 'http://127.0.0.1:8080/v1',
    timeoutMs: 30_000,
    maxRetries: 2,
    temperature: 0,
    maxTokens: 512,
    jsonMode: true,
  };
  const smart: Memory = await Memory.open(':memory:', {
    embedder: { provider: 'openai', model: 'text-embedding-3-small', apiKey: 'sk-…', dimensions: 256 },
    llm,
    prompts: { factExtraction: 'Extract food facts. Today is {today}.', procedural: 'Summarise.' },
  });
  await Memory.open(':memory:', { llm: { provider: 'anthropic' }, prompts: null });
  await Memory.open(':memory:', { llm: { provider: 'ollama', model: 'llama3.2', baseUrl: 'http://localhost:11434/v1' } });
  const said: Message = { role: 'user', content: 'I moved to Berlin', name: 'alice' };
  const events: MemoryEvent[] = await smart.addMessages([said, { role: 'assistant', content: 'Noted!' }], {
    userId: 'alice',
    metadata: { source: 'chat' },
    expiresAt: '2030-01-01',
    prompt: 'Only places.',
  });
  await smart.addMessages('I like tea', { agentId: 'a', infer: false, kind: 'episodic' });
  await smart.addMessages(said);
  const change: 'ADD' | 'UPDATE' | 'DELETE' | 'NONE' | undefined = events[0]?.event;
  const before: string | undefined = events[0]?.previous_memory;
  const text: string | undefined = events[0]?.memory;
  const role: string | undefined = events[0]?.role;
  const actor: string | undefined = events[0]?.actor_id;

  const added: AddResult = await memory.add('Alice is allergic to peanuts', {
    userId: 'alice',
    kind: 'semantic',
    metadata: { topic: 'health', tags: ['food', 'allergy'], severity: 3, nested: { ok: true } },
    expiresAt: new Date(),
  });
  const id: string = added.id;
  const fresh: boolean = added.added;
  await memory.addWithVector('x', new Float32Array(64), { agentId: 'a' });
  await memory.addWithVector('x', [0.1, 0.2]);
  const batch: AddResult[] = await memory.addBatch(['one', { content: 'two', runId: 'r', orgId: 'o' }]);
  await memory.addBatchWithVectors(['one'], [new Float32Array(64)]);

  const hits: SearchHit[] = await memory.search('peanuts', {
    userId: 'alice',
    mode: 'keyword',
    limit: 3,
    threshold: 0.2,
    includeGlobal: true,
    filters: { AND: [{ topic: 'health' }, { created_at: { gte: new Date('2026-01-01') } }] },
    weights: { fuzzy: 0.5 },
  });
  const first: SearchHit | undefined = hits[0];
  const score: number = first ? first.score : 0;
  const similarity: number | undefined = first?.similarity;
  const keywordRank: number | undefined = first?.explain.keyword?.rank;
  await memory.searchWithVector('', [1, 0], { mode: 'vector' });

  const record: MemoryRecord = await memory.get(id);
  const userId: string | undefined = record.user_id;
  const page: ListPage = await memory.list({ userId: 'alice', order: 'updated_asc', limit: 10, cursor: null });
  const next: string | null = page.next_cursor;
  await memory.list({ cursor: next, offset: 0, includeExpired: true });
  const total: number | undefined = (await memory.list({ userId: 'alice', withTotal: true })).total;
  const n: number = await memory.count({ filters: { topic: { in: ['health', 'food'] } } });
  const updated: MemoryRecord = await memory.update(id, { content: 'new', metadata: {}, expiresAt: null });
  await memory.updateWithVector(id, { content: 'newer' }, new Float32Array(64));
  await memory.update(id, { metadata: { mood: 'calm' }, mergeMetadata: true });
  const history: HistoryEntry[] = await memory.history(id);
  const event: 'ADD' | 'UPDATE' | 'DELETE' | undefined = history[0]?.event;
  const deleted: number = await memory.deleteAll({ userId: 'alice' });
  const purged: number = await memory.purgeExpired();
  await memory.delete(id);
  await memory.reset();
  await memory.flush();
  const path: string | null = memory.path;
  const model: string | null = memory.embeddingModel;
  const closed: boolean = memory.closed;

  // PostgreSQL stores: a URL in place of the path, the pool's options, copies between stores.
  const pool: PostgresOptions = { poolSize: 4, connectTimeoutMs: 5000, poolTimeoutMs: 1000, statementTimeoutMs: 0 };
  const server: Memory = await Memory.open('postgres://agent:secret@127.0.0.1:5432/memories', {
    embedder: { provider: 'hashing', dimensions: 64 },
    postgres: pool,
  });
  const where: string = server.location;
  const copied: CopyReport = await memory.copyInto(server);
  const rows: number = copied.memories + copied.history;
  // @ts-expect-error open options are camelCase
  await Memory.open('postgresql://127.0.0.1/memories', { postgres: { pool_size: 2 } });
  await Memory.open("host=127.0.0.1 dbname=memories user=agent password='secret'", { postgres: pool });
  // @ts-expect-error the target is an open Memory, not a URL
  await memory.copyInto('postgres://127.0.0.1/memories');
  await memory.close();

  try {
    await memory.get('nope');
  } catch (e) {
    if (e instanceof NotFoundError) {
      const code: ErrorCode | string = e.code;
      void code;
    } else if (e instanceof AgentMemError) {
      void e.message;
    }
  }
  const codes: string[] = errorCodes().map((c) => c.node);
  const staticCode: 'AM_INVALID_INPUT' = InvalidInputError.code;
  const indexCode: 'AM_INDEX' = VectorIndexError.code;
  const version: string = addonVersion;

  // @ts-expect-error the constructor is private: use Memory.open
  new Memory();
  // @ts-expect-error content is a string
  await memory.add(5);
  // @ts-expect-error options are camelCase
  await memory.add('x', { user_id: 'alice' });
  // @ts-expect-error not a kind
  await memory.add('x', { kind: 'dream' });
  // @ts-expect-error not a mode
  await memory.search('x', { mode: 'telepathy' });
  // @ts-expect-error a vector is numbers
  await memory.addWithVector('x', ['1']);
  // @ts-expect-error the hashing embedder needs dimensions
  await Memory.open(':memory:', { embedder: { provider: 'hashing' } });
  // @ts-expect-error results are snake_case, as in C and Python
  void record.userId;
  // @ts-expect-error deleteAll needs a scope or filters
  await memory.deleteAll();
  // @ts-expect-error not a role
  await smart.addMessages({ role: 'wizard', content: 'hi' });
  // @ts-expect-error messages are strings or messages
  await smart.addMessages(42);
  // @ts-expect-error not a provider
  await Memory.open(':memory:', { llm: { provider: 'skynet' } });
  // @ts-expect-error options are camelCase
  await Memory.open(':memory:', { llm: { provider: 'openai', api_key: 'sk' } });
  // @ts-expect-error Anthropic has no embeddings API
  await Memory.open(':memory:', { embedder: { provider: 'anthropic' } });
  // @ts-expect-error events are snake_case
  void events[0]?.previousMemory;

  // The knowledge graph.
  const graph: Graph = memory.graph;
  const alice: Entity = await graph.addEntity('Alice Smith', {
    type: 'person',
    aliases: ['Alice'],
    summary: 'a friend',
    userId: 'alice',
  });
  await graph.addEntity('Acme', { type: 'my_own_type', agentId: 'a', runId: null });
  const moved: RelationAdded = await graph.addRelation('Alice', 'lives in', 'Berlin', {
    userId: 'alice',
    validFrom: new Date(),
    validTo: '2030-01-01',
    confidence: 0.9,
    sources: [id],
  });
  const closedIds: string[] = moved.closed;
  const created: boolean = moved.created;
  await graph.addRelation({ id: alice.id }, 'works_at', { name: 'Acme', type: 'organisation' });
  await graph.addRelation({ name: 'Alice', type: null }, 'allergic_to', { value: 'peanuts' }, { orgId: 'o' });
  const detail: EntityDetail = await graph.entity(alice.id);
  const aliases: string[] = detail.entity.aliases;
  const summary: string | undefined = detail.entity.summary;
  const found: Entity[] = await graph.entities('ali', { userId: 'alice', type: 'person', limit: 5 });
  const relations: Relation[] = await graph.relations({
    userId: 'alice',
    entity: alice.id,
    predicate: 'lives_in',
    source: id,
    validAt: '2024-01-01',
    includeClosed: true,
    limit: 10,
  });
  await graph.relations();
  const ended: string | undefined = relations[0]?.valid_to;
  const objectId: string | undefined = relations[0]?.object;
  const near: Neighbor[] = await graph.neighbors(alice.id, {
    depth: 2,
    direction: 'out',
    predicates: ['knows'],
    validAt: new Date(),
    includeClosed: false,
  });
  const via: string | undefined = near[0]?.via.predicate;
  const hops: number | undefined = near[0]?.depth;
  const chain: Relation[] | null = await graph.path(alice.id, found[0]?.id ?? alice.id, { maxDepth: 3 });
  // @ts-expect-error not a direction
  await graph.neighbors(alice.id, { direction: 'sideways' });
  // @ts-expect-error graph options are camelCase
  await graph.path(alice.id, alice.id, { max_depth: 2 });
  // @ts-expect-error an end is a name, {name, type?} or {id}
  await graph.addRelation({ value: 'x' }, 'knows', 'Bob');
  // @ts-expect-error the object is required (a literal is {value})
  await graph.addRelation('Alice', 'knows');
  // @ts-expect-error aliases are a list
  await graph.addEntity('Al', { aliases: 'Alice' });
  // @ts-expect-error results are snake_case
  void relations[0]?.subjectName;

  // Chat with memory.
  const chatOptions: ChatOptions = {
    userId: 'alice',
    runId: 'session-1',
    limit: 5,
    threshold: 0.2,
    filters: { kind: { ne: 'episodic' } },
    mode: 'hybrid',
    asOf: new Date(),
    includeGlobal: true,
    queryTurns: 2,
    sessionWindow: 6,
    workingTtlSeconds: 3600,
    maxMemoryTokens: 1500,
    prompt: 'You remember: {memories}',
    remember: 'background',
  };
  const reply: ChatReply = await smart.chat([said, { role: 'tool', content: '{"ok": true}' }, said], chatOptions);
  const answer: string = reply.answer;
  const usedMemory: MemoryUsed | undefined = reply.memories_used[0];
  const from: 'procedural' | 'working' | 'search' | undefined = usedMemory?.source;
  const cited: Citation | undefined = reply.citations[0];
  const citedRef: number | undefined = cited?.ref;
  const turnId: string | undefined = reply.working_memory_id;
  const handle: string | undefined = reply.remember.handle;
  const outcome: Remembered = await smart.remembered(handle ?? '', { wait: true });
  const learned: MemoryEvent[] = outcome.events;
  const failure: string | undefined = outcome.error?.code;
  await smart.remembered('h');
  await smart.chat('What do I like?', { agentId: 'a', limit: 3, remember: 'off' });
  const signal: AbortSignalLike = {
    aborted: false,
    addEventListener: () => undefined,
    removeEventListener: () => undefined,
  };
  const stream: ChatStream = smart.chatStream('Tell me a story', { userId: 'alice', signal });
  const streamed: string[] = [];
  for await (const piece of stream) streamed.push(piece);
  const final: ChatReply = await stream.result;
  smart.chatStream('Stop now', { userId: 'alice', signal: null }).cancel();
  const step: IteratorResult<string, undefined> = await smart.chatStream('Hi', { userId: 'alice' }).next();
  try {
    await stream.result;
  } catch (e) {
    if (e instanceof CancelledError) void e.code;
  }
  const cancelledCode: 'AM_CANCELLED' = CancelledError.code;
  await Memory.open(':memory:', { llm, prompts: { chat: 'Memories: {memories}' } });
  // @ts-expect-error not a remember mode
  await smart.chat('Hi', { userId: 'alice', remember: 'later' });
  // @ts-expect-error chat options are camelCase
  await smart.chat('Hi', { userId: 'alice', max_memory_tokens: 10 });
  // @ts-expect-error chat (not chatStream) takes no signal
  await smart.chat('Hi', { userId: 'alice', signal });
  // @ts-expect-error a stream is iterated, not awaited for its reply
  const notReply: ChatReply = await smart.chatStream('Hi', { userId: 'alice' });
  // @ts-expect-error replies are snake_case
  void reply.memoriesUsed;
  // @ts-expect-error a handle is a string
  await smart.remembered(7);

  // WASM plugins.
  const withPlugins: Memory = await Memory.open(':memory:', { plugins: { cacheSize: 4 } });
  const manifest: PluginManifest = {
    id: 'guard',
    name: 'Guard',
    version: '1.0.0',
    kind: 'hook',
    capabilities: ['logging', 'config', 'search'],
    config: { mode: 'strict' },
    allowedHosts: ['api.example.com'],
    allowedPaths: { '/tmp/data': '/data' },
    limits: { memoryPages: 64, timeoutMs: 200, fuel: null },
    onError: 'skip',
  };
  const info: PluginInfo = await withPlugins.registerPlugin(manifest, '(module)');
  await withPlugins.registerPlugin({ id: 'bytes', kind: 'function' }, new Uint8Array([0, 97, 115, 109]));
  await withPlugins.registerPlugin({ id: 'file', path: '/plugins/pii_redactor.wasm', limits: { fuel: 1_000_000 } });
  const granted: PluginCapability[] = info.capabilities;
  const timeout: number = info.limits.timeout_ms;
  const pages: number = info.limits.memory_pages;
  const fuel: number | null = info.limits.fuel;
  const calls: number = info.stats.calls;
  const hook: 'on_add' | 'before_search' | 'after_search' | undefined = info.hooks[0];
  const lastError: string | undefined = info.last_error;
  const logged: string | undefined = info.log[0]?.message;
  const all: PluginInfo[] = await withPlugins.plugins();
  const loaded: boolean = (await withPlugins.loadPlugin('guard')).loaded;
  await withPlugins.unloadPlugin('guard');
  await withPlugins.reloadPlugin('guard');
  const output: Uint8Array = await withPlugins.callPlugin('bytes', 'echo', 'hi', { userId: 'alice' });
  await withPlugins.callPlugin('bytes', 'echo', new Uint8Array([1, 2]));
  await withPlugins.callPlugin('bytes', 'echo');
  await withPlugins.callPlugin('bytes', 'echo', null, { agentId: 'a', runId: 'r', orgId: 'o' });
  await withPlugins.unregisterPlugin('guard');
  try {
    await withPlugins.callPlugin('bytes', 'echo');
  } catch (e) {
    if (e instanceof PluginError || e instanceof PermissionDeniedError) void e.code;
  }
  const pluginCode: 'AM_PLUGIN' = PluginError.code;
  // @ts-expect-error a manifest needs an id
  await withPlugins.registerPlugin({ name: 'anonymous' }, '(module)');
  // @ts-expect-error not a capability
  await withPlugins.registerPlugin({ id: 'x', capabilities: ['root'] }, '(module)');
  // @ts-expect-error manifest options are camelCase
  await withPlugins.registerPlugin({ id: 'x', on_error: 'skip' }, '(module)');
  // @ts-expect-error limits are camelCase
  await withPlugins.registerPlugin({ id: 'x', limits: { timeout_ms: 5 } }, '(module)');
  // @ts-expect-error not a failure policy
  await withPlugins.registerPlugin({ id: 'x', onError: 'ignore' }, '(module)');
  // @ts-expect-error config values are strings
  await withPlugins.registerPlugin({ id: 'x', config: { n: 1 } }, '(module)');
  // @ts-expect-error the input is bytes or a string
  await withPlugins.callPlugin('bytes', 'echo', 42);
  // @ts-expect-error scopes are camelCase
  await withPlugins.callPlugin('bytes', 'echo', 'x', { user_id: 'alice' });
  // @ts-expect-error infos are snake_case, as every result
  void info.onError;
  // @ts-expect-error open options are camelCase
  await Memory.open(':memory:', { plugins: { cache_size: 2 } });

  return [
    String(granted.length), String(timeout), String(pages), String(fuel), String(calls),
    String(hook), String(lastError), String(logged), String(all.length), String(loaded),
    String(output.length), pluginCode,
    String(fresh), String(batch.length), String(score), String(similarity), String(keywordRank),
    String(userId), String(n), updated.content, String(event), String(deleted), String(purged),
    String(path), String(model), String(closed), codes.join(), staticCode, indexCode, version,
    String(change), String(before), String(text), where, String(rows),
    String(role), String(actor), String(total),
    String(closedIds.length), String(created), String(aliases.length), String(summary),
    String(ended), String(objectId), String(via), String(hops), String(chain?.length),
    answer, String(from), String(citedRef), String(turnId), String(learned.length),
    String(failure), streamed.join(''), final.model, String(step.done), cancelledCode,
    String(notReply),
  ];
}
