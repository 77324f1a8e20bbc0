'use strict';
// agent_mem for Node: the idiomatic wrapper over the native addon (bindings/node).
//
// The wrapper checks argument types (a TypeError before anything reaches the core), maps the
// camelCase options onto the JSON request shapes shared with C and Python (core/src/wire/),
// and parses the JSON results. Everything else — validation, defaults, the work itself —
// happens in the Rust core, on libuv's thread pool.

const path = require('node:path');

const ADDON = `agent_mem.${process.platform}-${process.arch}.node`;

function loadAddon() {
  const file = path.join(__dirname, ADDON);
  try {
    return require(file);
  } catch (e) {
    if (e && e.code === 'MODULE_NOT_FOUND' && String(e.message).includes(ADDON)) {
      throw new Error(
        `agent_mem: the native addon ${file} is not built. It is compiled from source with ` +
          'cargo (https://rustup.rs): run `npm rebuild agent_mem` in your project, or ' +
          '`npm run build` in the package folder.',
        { cause: e },
      );
    }
    throw e;
  }
}

const native = loadAddon();

// ------------------------------------------------------------------------------- errors

/** Base class of every error the core reports; `code` is the stable `"AM_…"` name. */
class AgentMemError extends Error {
  constructor(message, options) {
    const cause = options && options.cause;
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = (options && options.code) || new.target.code || 'AM_INTERNAL';
  }
}

class InvalidInputError extends AgentMemError {}
InvalidInputError.code = 'AM_INVALID_INPUT';
class NotFoundError extends AgentMemError {}
NotFoundError.code = 'AM_NOT_FOUND';
class AlreadyExistsError extends AgentMemError {}
AlreadyExistsError.code = 'AM_ALREADY_EXISTS';
class StorageError extends AgentMemError {}
StorageError.code = 'AM_STORAGE';
class VectorIndexError extends AgentMemError {}
VectorIndexError.code = 'AM_INDEX';
class EmbeddingError extends AgentMemError {}
EmbeddingError.code = 'AM_EMBEDDING';
class ModelUnavailableError extends AgentMemError {}
ModelUnavailableError.code = 'AM_MODEL_UNAVAILABLE';
class LlmError extends AgentMemError {}
LlmError.code = 'AM_LLM';
class PluginError extends AgentMemError {}
PluginError.code = 'AM_PLUGIN';
class PermissionDeniedError extends AgentMemError {}
PermissionDeniedError.code = 'AM_PERMISSION_DENIED';
class IoError extends AgentMemError {}
IoError.code = 'AM_IO';
class CorruptedError extends AgentMemError {}
CorruptedError.code = 'AM_CORRUPTED';
class ClosedError extends AgentMemError {}
ClosedError.code = 'AM_CLOSED';
class UnsupportedError extends AgentMemError {}
UnsupportedError.code = 'AM_UNSUPPORTED';
class InternalError extends AgentMemError {}
InternalError.code = 'AM_INTERNAL';
class CancelledError extends AgentMemError {}
CancelledError.code = 'AM_CANCELLED';

const ERROR_CLASSES = new Map(
  [
    InvalidInputError,
    NotFoundError,
    AlreadyExistsError,
    StorageError,
    VectorIndexError,
    EmbeddingError,
    ModelUnavailableError,
    LlmError,
    PluginError,
    PermissionDeniedError,
    IoError,
    CorruptedError,
    ClosedError,
    UnsupportedError,
    InternalError,
    CancelledError,
  ].map((cls) => [cls.code, cls]),
);

/** The causes the core reported (SQLite, I/O…), as plain errors. */
function plainCause(cause) {
  if (!(cause instanceof Error)) return undefined;
  const inner = plainCause(cause.cause);
  return new Error(cause.message, inner === undefined ? undefined : { cause: inner });
}

/** The addon rejects with an Error whose `code` is `AM_…`; this is its AgentMemError. */
function fromNative(err) {
  if (!(err instanceof Error) || typeof err.code !== 'string' || !err.code.startsWith('AM_')) {
    return err;
  }
  const Cls = ERROR_CLASSES.get(err.code) || AgentMemError;
  return new Cls(err.message, { code: err.code, cause: plainCause(err.cause) });
}

/** Awaits an addon call and parses its JSON result. */
async function settle(pending) {
  let text;
  try {
    text = await pending;
  } catch (e) {
    throw fromNative(e);
  }
  return JSON.parse(text);
}

// ------------------------------------------------------------------------------- arguments

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (typeof value === 'object') {
    const name = value.constructor && value.constructor.name;
    return name && name !== 'Object' ? `an instance of ${name}` : 'an object';
  }
  return `type ${typeof value}`;
}

function argError(what, expected, value) {
  const e = new TypeError(`${what} must be ${expected}, got ${describe(value)}`);
  e.code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Checks of one option's value: return what goes into the JSON request, or throw a TypeError.
// `null` never reaches them: it always means "not given" (or, for an update's expiry, "none").
const str = (what, v) => {
  if (typeof v !== 'string') throw argError(what, 'a string', v);
  return v;
};
const bool = (what, v) => {
  if (typeof v !== 'boolean') throw argError(what, 'a boolean', v);
  return v;
};
// JSON has no NaN or Infinity: they would turn into null, and the option silently off.
const num = (what, v) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw argError(what, 'a finite number', v);
  return v;
};
const obj = (what, v) => {
  if (!isObject(v)) throw argError(what, 'an object', v);
  return v;
};
const time = (what, v) => {
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw argError(what, 'a valid Date', v);
    return v.toISOString();
  }
  if (typeof v !== 'string') throw argError(what, 'a string (RFC 3339 time or date) or a Date', v);
  return v;
};
// Filters go to the core as they are: it reports a malformed one by its path.
const any = (_what, v) => v;
const nested = (spec) => (what, v) => request(what, v, spec);
const embedder = (what, v) => (typeof v === 'string' ? v : request(what, v, EMBEDDER));
// An argument of the call (content, query, a relation's subject…) may not come again in the
// options.
const FIRST = Symbol('argument of the call');

/**
 * The JSON request for `options`: documented camelCase names become the core's snake_case
 * names after a type check. Other keys go to the core unchanged, so the JSON names work as
 * well and a misspelt key is refused by the core (InvalidInputError naming it), as in every
 * language.
 */
function request(what, options, spec) {
  if (options === undefined || options === null) return {};
  if (!isObject(options)) throw argError(what, 'an object', options);
  const out = {};
  const given = new Map();
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const rule = Object.prototype.hasOwnProperty.call(spec, key) ? spec[key] : undefined;
    if (rule === FIRST) {
      const e = new TypeError(`${what}.${key}: ${key} is an argument of the call, not an option`);
      e.code = 'ERR_INVALID_ARG_VALUE';
      throw e;
    }
    const [wire, check] = rule || [key, any];
    if (given.has(wire)) {
      const e = new TypeError(`${what}: ${given.get(wire)} and ${key} are the same option`);
      e.code = 'ERR_INVALID_ARG_VALUE';
      throw e;
    }
    given.set(wire, key);
    out[wire] = value === null ? null : check(`${what}.${key}`, value);
  }
  return out;
}

const SCOPE = {
  userId: ['user_id', str],
  agentId: ['agent_id', str],
  runId: ['run_id', str],
  orgId: ['org_id', str],
};
const NEW_MEMORY = {
  ...SCOPE,
  content: ['content', str],
  kind: ['kind', str],
  metadata: ['metadata', obj],
  expiresAt: ['expires_at', time],
  validFrom: ['valid_from', time],
  validTo: ['valid_to', time],
  // The graph the memory states: in its scope, in its transaction, sourced from it.
  entities: ['entities', (what, v) => entityInputs(what, v)],
  relations: ['relations', (what, v) => relationInputs(what, v)],
};
const ADD = { ...NEW_MEMORY, content: FIRST };
const SELECT = { ...SCOPE, filters: ['filters', any] };
// Reading the store as it stood at a past moment (transaction time).
const AS_OF = { asOf: ['as_of', time] };
// Placing a read in time: as of a moment, what was valid at one, superseded memories too.
const IN_TIME = {
  ...AS_OF,
  validAt: ['valid_at', time],
  includeSuperseded: ['include_superseded', bool],
};
const GET = { ...AS_OF };
const COUNT = { ...SELECT, ...IN_TIME };
const LIST = {
  ...SELECT,
  ...IN_TIME,
  includeGlobal: ['include_global', bool],
  includeExpired: ['include_expired', bool],
  order: ['order', str],
  limit: ['limit', num],
  offset: ['offset', num],
  cursor: ['cursor', str],
  withTotal: ['with_total', bool],
};
const WEIGHTS = {
  vector: ['vector', num],
  keyword: ['keyword', num],
  fuzzy: ['fuzzy', num],
  graph: ['graph', num],
  context: ['context', num],
  method: ['method', str],
  rrfK: ['rrf_k', num],
};
const SEARCH = {
  ...SELECT,
  ...IN_TIME,
  query: FIRST,
  mode: ['mode', str],
  limit: ['limit', num],
  threshold: ['threshold', num],
  includeGlobal: ['include_global', bool],
  includeExpired: ['include_expired', bool],
  weights: ['weights', nested(WEIGHTS)],
  timeAware: ['time_aware', bool],
  now: ['now', time],
};
const UPDATE = {
  content: ['content', str],
  metadata: ['metadata', obj],
  mergeMetadata: ['merge_metadata', bool],
  kind: ['kind', str],
  expiresAt: ['expires_at', time],
  validFrom: ['valid_from', time],
  validTo: ['valid_to', time],
};
const SUPERSEDE = {
  content: FIRST,
  kind: ['kind', str],
  metadata: ['metadata', obj],
  validFrom: ['valid_from', time],
  expiresAt: ['expires_at', time],
};
const UNDO = { force: ['force', bool] };
const ADD_MESSAGES = {
  ...SCOPE,
  messages: FIRST,
  infer: ['infer', bool],
  prompt: ['prompt', str],
  kind: ['kind', str],
  metadata: ['metadata', obj],
  expiresAt: ['expires_at', time],
  observedAt: ['observed_at', time],
  supersede: ['supersede', bool],
};
// A chat turn with memory (`chat`, `chatStream`): the recall, the prompt, the remembering.
const CHAT = {
  ...SCOPE,
  messages: FIRST,
  limit: ['limit', num],
  threshold: ['threshold', num],
  filters: ['filters', any],
  mode: ['mode', str],
  asOf: ['as_of', time],
  includeGlobal: ['include_global', bool],
  queryTurns: ['query_turns', num],
  sessionWindow: ['session_window', num],
  workingTtlSeconds: ['working_ttl_seconds', num],
  maxMemoryTokens: ['max_memory_tokens', num],
  prompt: ['prompt', str],
  remember: ['remember', str],
};
const REMEMBERED = { handle: FIRST, wait: ['wait', bool] };
// The local, hashing and remote (OpenAI-compatible) embedders share one object; the core
// refuses the fields that do not apply to the provider.
const EMBEDDER = {
  provider: ['provider', str],
  modelDir: ['model_dir', str],
  dimensions: ['dimensions', num],
  model: ['model', str],
  apiKey: ['api_key', str],
  baseUrl: ['base_url', str],
  timeoutMs: ['timeout_ms', num],
  maxRetries: ['max_retries', num],
};
const LLM = {
  provider: ['provider', str],
  model: ['model', str],
  apiKey: ['api_key', str],
  baseUrl: ['base_url', str],
  timeoutMs: ['timeout_ms', num],
  maxRetries: ['max_retries', num],
  temperature: ['temperature', num],
  maxTokens: ['max_tokens', num],
  jsonMode: ['json_mode', bool],
};
const PROMPTS = {
  factExtraction: ['fact_extraction', str],
  decisions: ['decisions', str],
  procedural: ['procedural', str],
  chat: ['chat', str],
};
const OPEN = {
  embedder: ['embedder', embedder],
  persistIndex: ['persist_index', bool],
  index: [
    'index',
    nested({
      connectivity: ['connectivity', num],
      expansionAdd: ['expansion_add', num],
      expansionSearch: ['expansion_search', num],
      quantization: ['quantization', str],
      exactScanLimit: ['exact_scan_limit', num],
    }),
  ],
  search: [
    'search',
    nested({
      mode: ['mode', str],
      limit: ['limit', num],
      threshold: ['threshold', num],
      weights: ['weights', nested(WEIGHTS)],
    }),
  ],
  llm: ['llm', nested(LLM)],
  prompts: ['prompts', nested(PROMPTS)],
  plugins: ['plugins', nested({ cacheSize: ['cache_size', num] })],
  postgres: [
    'postgres',
    nested({
      poolSize: ['pool_size', num],
      connectTimeoutMs: ['connect_timeout_ms', num],
      poolTimeoutMs: ['pool_timeout_ms', num],
      statementTimeoutMs: ['statement_timeout_ms', num],
    }),
  ],
  historyRetention: [
    'history_retention',
    nested({ maxAgeDays: ['max_age_days', num], keepVersions: ['keep_versions', num] }),
  ],
  graph: [
    'graph',
    nested({
      extract: ['extract', bool],
      functionalPredicates: ['functional_predicates', strings],
      nameSimilarity: ['name_similarity', num],
    }),
  ],
};
// The knowledge graph (memory.graph). Reads of relations see those holding now unless placed
// in valid time (`validAt`) or asked for every one, ended ones included (`includeClosed`).
const RELATION_TIME = {
  validAt: ['valid_at', time],
  includeClosed: ['include_closed', bool],
  asOf: ['as_of', time],
};
const GRAPH_ADD_ENTITY = {
  ...SCOPE,
  name: FIRST,
  type: ['type', str],
  aliases: ['aliases', strings],
  summary: ['summary', str],
};
// subject, predicate and object (an entity, or a literal `{value}`) are the call's arguments.
const GRAPH_ADD_RELATION = {
  ...SCOPE,
  subject: FIRST,
  predicate: FIRST,
  object: FIRST,
  value: FIRST,
  validFrom: ['valid_from', time],
  validTo: ['valid_to', time],
  confidence: ['confidence', num],
  sources: ['sources', strings],
};
const GRAPH_ENTITIES = {
  ...SCOPE,
  query: FIRST,
  type: ['type', str],
  limit: ['limit', num],
};
const GRAPH_RELATIONS = {
  ...SCOPE,
  ...RELATION_TIME,
  entity: ['entity', str],
  about: ['about', str],
  predicate: ['predicate', str],
  source: ['source', str],
  limit: ['limit', num],
};
const GRAPH_NEIGHBORS = {
  ...RELATION_TIME,
  entity: FIRST,
  depth: ['depth', num],
  predicates: ['predicates', strings],
  direction: ['direction', str],
};
const GRAPH_PATH = {
  ...RELATION_TIME,
  from: FIRST,
  to: FIRST,
  maxDepth: ['max_depth', num],
};
const GRAPH_SPLIT_ENTITY = {
  id: FIRST,
  name: FIRST,
  type: ['type', str],
  aliases: ['aliases', strings],
  relations: ['relations', strings],
  summary: ['summary', str],
};

// An entity that comes with a memory or an import: a name or {name, type?, aliases?,
// summary?}.
const ENTITY_INPUT = {
  name: ['name', str],
  type: ['type', str],
  aliases: ['aliases', (what, v) => strings(what, v)],
  summary: ['summary', str],
};
// A relation that comes with a memory (ends: a name, {name, type?} or {id}), and a triple to
// import (ends: the same; a name stays a name), with the types of new named ends.
const RELATION_INPUT = {
  subject: ['subject', (what, v) => entityRef(what, v, false).ref],
  predicate: ['predicate', str],
  object: ['object', (what, v) => entityRef(what, v, false).ref],
  value: ['value', str],
  validFrom: ['valid_from', time],
  validTo: ['valid_to', time],
  confidence: ['confidence', num],
  sources: ['sources', (what, v) => strings(what, v)],
};
const TRIPLE = {
  ...RELATION_INPUT,
  subject: ['subject', (what, v) => (typeof v === 'string' ? v : entityRef(what, v, false).ref)],
  object: ['object', (what, v) => (typeof v === 'string' ? v : entityRef(what, v, false).ref)],
  subjectType: ['subject_type', str],
  objectType: ['object_type', str],
};
const GRAPH_IMPORT = {
  ...SCOPE,
  triples: FIRST,
  entities: ['entities', (what, v) => entityInputs(what, v)],
};
const GRAPH_EXPORT = {
  ...SCOPE,
  format: FIRST,
  includeClosed: ['include_closed', bool],
};

// A plugin's manifest. `config` and `allowedPaths` are maps whose keys are the user's own
// (config keys, host directories): they go to the core as they are.
const MANIFEST = {
  id: ['id', str],
  name: ['name', str],
  version: ['version', str],
  kind: ['kind', str],
  capabilities: ['capabilities', list],
  config: ['config', obj],
  allowedHosts: ['allowed_hosts', list],
  allowedPaths: ['allowed_paths', obj],
  limits: [
    'limits',
    nested({
      memoryPages: ['memory_pages', num],
      timeoutMs: ['timeout_ms', num],
      fuel: ['fuel', num],
    }),
  ],
  onError: ['on_error', str],
  path: ['path', str],
};

/** A vector as the Float32Array the addon takes. */
function vector(what, v) {
  if (v instanceof Float32Array) return v;
  if (Array.isArray(v) || v instanceof Float64Array) {
    for (let i = 0; i < v.length; i++) {
      if (typeof v[i] !== 'number') throw argError(`${what}[${i}]`, 'a number', v[i]);
    }
    return Float32Array.from(v);
  }
  throw argError(what, 'a Float32Array or an array of numbers', v);
}

function newMemory(what, item) {
  if (typeof item === 'string') return { content: item };
  if (!isObject(item)) throw argError(what, 'a string or an object with content', item);
  const out = request(what, item, NEW_MEMORY);
  if (typeof out.content !== 'string') throw argError(`${what}.content`, 'a string', item.content);
  return out;
}

/** The messages of `addMessages`: a string (one user message), a message or a list of them.
 * Messages go to the core as they are (it checks roles and contents). */
function messagesArg(v) {
  if (typeof v === 'string' || isObject(v)) return v;
  if (Array.isArray(v)) {
    v.forEach((m, i) => {
      if (!isObject(m)) throw argError(`messages[${i}]`, 'an object {role, content}', m);
    });
    return v;
  }
  throw argError('messages', 'a string, a message {role, content} or an array of messages', v);
}

function list(what, v) {
  if (!Array.isArray(v)) throw argError(what, 'an array', v);
  return v;
}

function strings(what, v) {
  return list(what, v).map((s, i) => str(`${what}[${i}]`, s));
}

function entityInputs(what, v) {
  return list(what, v).map((e, i) =>
    typeof e === 'string' ? { name: e } : request(`${what}[${i}]`, obj(`${what}[${i}]`, e), ENTITY_INPUT),
  );
}

function relationInputs(what, v, spec = RELATION_INPUT) {
  return list(what, v).map((r, i) => request(`${what}[${i}]`, obj(`${what}[${i}]`, r), spec));
}

function argValueError(message) {
  const e = new TypeError(message);
  e.code = 'ERR_INVALID_ARG_VALUE';
  return e;
}

/**
 * An end of a relation as the core takes it: a name (the scope's entity answering to it, or a
 * new one), `{name, type?}` (the type of a new entity) or `{id}` (an existing entity). With
 * `literal`, `{value}` is also accepted: a literal object, sent as the request's `value`.
 * The keys are checked here: the core reads an end by its shape and would pass over others.
 */
function entityRef(what, v, literal) {
  if (typeof v === 'string') return { ref: { name: v } };
  const expected = literal
    ? 'an entity name, {name, type?}, {id} or a literal {value}'
    : 'an entity name, {name, type?} or {id}';
  if (!isObject(v)) throw argError(what, expected, v);
  const keys = Object.keys(v).filter((k) => v[k] !== undefined);
  const shape = (allowed) => keys.length > 0 && keys.every((k) => allowed.includes(k));
  if (shape(['id'])) return { ref: { id: str(`${what}.id`, v.id) } };
  if (literal && shape(['value'])) return { value: str(`${what}.value`, v.value) };
  if (shape(['name', 'type']) && keys.includes('name')) {
    const ref = { name: str(`${what}.name`, v.name) };
    if (v.type !== undefined && v.type !== null) ref.type = str(`${what}.type`, v.type);
    return { ref };
  }
  throw argValueError(`${what} must be ${expected}, got keys ${JSON.stringify(keys)}`);
}

/** Bytes for the addon: a Buffer or Uint8Array as it is, a string as its UTF-8 bytes. */
function bytesArg(what, v) {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  throw argError(what, 'a Buffer, a Uint8Array or a string', v);
}

// ------------------------------------------------------------------------------- Graph

const GRAPH = Symbol('Memory.graph');

/**
 * The knowledge graph of a store, `memory.graph`: entities (people, places, things…) known by
 * a name and aliases within one scope, and relations `subject —predicate→ object` between
 * them, with the time they held in the world and the memories they came from. Every method
 * returns a Promise; results have the core's snake_case keys, as every result.
 */
class Graph {
  #call;

  /** Use `memory.graph`. */
  constructor(token, call) {
    if (token !== GRAPH) throw new TypeError('use `memory.graph`');
    this.#call = call;
  }

  /**
   * Adds an entity, or finds it: an entity of the same scope that already answers to the
   * name or one of `options.aliases` (compared without case, extra spaces or diacritics) is
   * the same entity, and gains the new aliases (and the summary, if it had none). Options:
   * `type` (default `"thing"`), `aliases`, `summary` and the scope. Resolves with the entity.
   */
  async addEntity(name, options) {
    str('name', name);
    return await this.#call('graph_add_entity', {
      ...request('options', options, GRAPH_ADD_ENTITY),
      name,
    });
  }

  /**
   * Adds a relation `subject —predicate→ object` in the scope of `options`. `subject` and an
   * entity `object` are names (the scope's entity answering to it, or a new one), `{name,
   * type}` (the type of a new entity) or `{id}`; a literal object is `{value}`. The predicate
   * is stored in lower snake case (`"lives in"` → `lives_in`); on a functional predicate
   * (`lives_in`, `works_at`…) a new object closes the relation to the old one. Options:
   * `validFrom`, `validTo`, `confidence` (0 to 1), `sources` (memory ids of the same scope)
   * and the scope. Resolves with `{relation, created, closed}`.
   */
  async addRelation(subject, predicate, object, options) {
    const { ref: subjectRef } = entityRef('subject', subject, false);
    str('predicate', predicate);
    const { ref: objectRef, value } = entityRef('object', object, true);
    const wire = { ...request('options', options, GRAPH_ADD_RELATION), subject: subjectRef, predicate };
    if (objectRef !== undefined) wire.object = objectRef;
    else wire.value = value;
    return await this.#call('graph_add_relation', wire);
  }

  /** An entity by id with every relation touching it, ended ones included, oldest first:
   * `{entity, relations}`; NotFoundError if there is none. */
  async entity(id) {
    str('id', id);
    return await this.#call('graph_entity', { id });
  }

  /** The entities of a scope whose name or an alias matches `query` (`""`: every one).
   * Options: `type`, `limit` and the scope (exact: entities are never shared across
   * scopes). */
  async entities(query, options) {
    str('query', query);
    return await this.#call('graph_entities', {
      ...request('options', options, GRAPH_ENTITIES),
      query,
    });
  }

  /** The relations of a scope (exact), those holding now unless `validAt` or
   * `includeClosed` says otherwise. Options: `entity` (touching it, either end), `about`
   * (touching an entity this text names, a question say),
   * `predicate`, `source` (a memory id), `validAt`, `includeClosed`, `limit` (default 100)
   * and the scope. */
  async relations(options) {
    return await this.#call('graph_relations', request('options', options, GRAPH_RELATIONS));
  }

  /** The entities around one, each with its `depth` and the relation it was first reached
   * `via`. Options: `depth` (1 to 3, default 1), `predicates`, `direction` (`"out"`, `"in"` or
   * `"both"`, the default), `validAt`, `includeClosed`. */
  async neighbors(entityId, options) {
    str('entityId', entityId);
    return await this.#call('graph_neighbors', {
      ...request('options', options, GRAPH_NEIGHBORS),
      entity: entityId,
    });
  }

  /** A shortest chain of relations from one entity to another, followed either way (`[]`
   * from an entity to itself), or null when none is at most `maxDepth` (1 to 3, default 3)
   * long. Options: `maxDepth`, `validAt`, `includeClosed`. */
  async path(fromId, toId, options) {
    str('fromId', fromId);
    str('toId', toId);
    return await this.#call('graph_path', {
      ...request('options', options, GRAPH_PATH),
      from: fromId,
      to: toId,
    });
  }

  /** Merges entity `absorbId` into entity `keepId` (one scope): the kept one answers to
   * every name of both and becomes the end of the other's relations (one between the two
   * is dropped); relations saying the same thing become one; recorded in both histories.
   * Resolves with the kept entity and its relations. */
  async mergeEntities(keepId, absorbId) {
    str('keepId', keepId);
    str('absorbId', absorbId);
    return await this.#call('graph_merge_entities', { keep: keepId, absorb: absorbId });
  }

  /** Renames an entity; the old name stays an alias. InvalidInputError when another entity
   * of its scope answers to `name` (merge them instead). */
  async renameEntity(id, name) {
    str('id', id);
    str('name', name);
    return await this.#call('graph_rename_entity', { id, name });
  }

  /** Splits a new entity named `name` off entity `id`: it takes `options.aliases` (aliases of
   * the entity) and becomes the end of `options.relations` (ids of relations touching it).
   * Options: `type` (default the entity's), `aliases`, `relations`, `summary`. Resolves with
   * `{entity, split_off}`, each with its relations. */
  async splitEntity(id, name, options) {
    str('id', id);
    str('name', name);
    return await this.#call('graph_split_entity', {
      ...request('options', options, GRAPH_SPLIT_ENTITY),
      id,
      name,
    });
  }

  /** The corrections of an entity (merges, renames, splits), oldest first; kept for an
   * entity merged away too. */
  async entityHistory(id) {
    str('id', id);
    return await this.#call('graph_entity_history', { id });
  }

  /**
   * Imports triples into the scope of `options`, in one transaction: all or none (a bad
   * triple, an unknown entity id or source, an entity of another scope rejects the call and
   * nothing changes). A triple is `{subject, predicate, object | value, subjectType?,
   * objectType?, validFrom?, validTo?, confidence?, sources?}`, ends as names, `{name,
   * type?}` or `{id}`; at most 10,000 a call. `options.entities` (names or `{name, type?,
   * aliases?, summary?}`) are found or created first. A JSON export's content imports back:
   * `importTriples(content.triples, {entities: content.entities, userId})`. Resolves with
   * `{relations_created, relations_held, entities_created, closed}`.
   */
  async importTriples(triples, options) {
    return await this.#call('graph_import', {
      ...request('options', options, GRAPH_IMPORT),
      triples: relationInputs('triples', triples, TRIPLE),
    });
  }

  /**
   * The graph of exactly the scope of `options`, as `{format, content}`: `"json"` (the
   * default) a document `{entities, triples}` that `importTriples` takes back, `"graphml"`
   * GraphML text (entities and literal values as nodes, relations as edges), `"dot"`
   * Graphviz DOT text. The relations holding now, or every one with `includeClosed`.
   */
  async export(format, options) {
    const wire = request('options', options, GRAPH_EXPORT);
    if (format !== undefined && format !== null) wire.format = str('format', format);
    return await this.#call('graph_export', wire);
  }
}

// ------------------------------------------------------------------------------- ChatStream

const STREAM = Symbol('Memory.chatStream');
const DONE = Object.freeze({ value: undefined, done: true });
const ignore = () => {};

/** An AbortSignal, or anything shaped like one. */
function signalArg(what, v) {
  const shaped =
    typeof v === 'object' &&
    v !== null &&
    typeof v.aborted === 'boolean' &&
    typeof v.addEventListener === 'function';
  if (!shaped) throw argError(what, 'an AbortSignal', v);
  return v;
}

/**
 * A chat answer as it is written: an async iterable of the answer's pieces of text (`for
 * await (const piece of stream)`), and `result`, the reply once the call has ended. The call
 * starts at once and runs whether or not the pieces are read. Cancelling it (`cancel()`, the
 * `signal` of its options, or leaving a `for await` loop early) ends the iteration with a
 * CancelledError and stops the core call at its next piece; `result` then rejects with
 * CancelledError and nothing is stored (a cancel that comes after the model's last piece is
 * too late: the turn completes and `result` resolves).
 */
class ChatStream {
  #native;
  /** Pieces arrived, not read yet. */
  #queue = [];
  /** Pending `next()` calls: `[resolve, reject]`. */
  #waiting = [];
  /** The core call has ended (its outcome is `result`'s). */
  #ended = false;
  /** The error that ends the iteration (after the queued pieces, unless cancelled). */
  #error = null;
  /** The iteration has given its end (done, or the error). */
  #finished = false;
  #signal;
  #onAbort;

  /** Use `memory.chatStream`. */
  constructor(token, native, signal) {
    if (token !== STREAM) throw new TypeError('use `memory.chatStream(messages, options)`');
    this.#native = native;
    this.#signal = signal;
    /** The reply (`ChatReply`) once the call has ended; rejects with its error. */
    this.result = this.#pump();
    // Rejections of `result` are the caller's to see, not unhandled ones when only the
    // pieces are read.
    this.result.catch(ignore);
    if (signal !== undefined && !this.#ended) {
      this.#onAbort = () => this.#cancel(signal.reason);
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  /** Reads the pieces as they come, then the outcome. */
  async #pump() {
    if (this.#native === null) {
      const error = new CancelledError('the chat was cancelled before it started', {
        cause: this.#signal?.reason,
      });
      this.#end(error);
      throw error;
    }
    try {
      for (;;) {
        const piece = await this.#native.next();
        if (piece === null) break;
        if (this.#error === null) {
          this.#queue.push(piece);
          this.#wake();
        }
      }
      const reply = JSON.parse(this.#native.result());
      this.#end(null);
      return reply;
    } catch (e) {
      const error = fromNative(e);
      this.#end(error);
      throw error;
    }
  }

  #end(error) {
    this.#ended = true;
    if (error !== null && this.#error === null) this.#error = error;
    if (this.#onAbort !== undefined) this.#signal.removeEventListener('abort', this.#onAbort);
    this.#wake();
  }

  #cancel(cause) {
    if (!this.#ended) this.#native.cancel();
    if (this.#finished) return;
    this.#queue.length = 0;
    this.#error ??= new CancelledError('the chat was cancelled', { cause });
    this.#wake();
  }

  /** Settles the pending `next()` calls that can be. */
  #wake() {
    while (this.#waiting.length > 0) {
      const [resolve, reject] = this.#waiting[0];
      if (this.#finished) resolve(DONE);
      else if (this.#queue.length > 0) resolve({ value: this.#queue.shift(), done: false });
      else if (this.#error !== null) {
        this.#finished = true;
        reject(this.#error);
      } else if (this.#ended) {
        this.#finished = true;
        resolve(DONE);
      } else return;
      this.#waiting.shift();
    }
  }

  /** Stops the call (see the class); does nothing once it has ended. */
  cancel() {
    this.#cancel(undefined);
  }

  /** The next piece of the answer. */
  next() {
    return new Promise((resolve, reject) => {
      this.#waiting.push([resolve, reject]);
      this.#wake();
    });
  }

  /** Leaving a `for await` loop early: cancels the call (when it still runs). */
  async return() {
    this.#cancel(undefined);
    this.#finished = true;
    this.#wake();
    return DONE;
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

// ------------------------------------------------------------------------------- Memory

const OPENING = Symbol('Memory.open');

/**
 * An open memory store. Create one with `await Memory.open(path, options)`; every method
 * returns a Promise and runs in the core off the JavaScript thread, so calls may overlap.
 * Results are plain objects with the same keys as the JSON of the C and Python APIs
 * (snake_case: `user_id`, `created_at`, `next_cursor`…).
 */
class Memory {
  #native;
  #graph;

  /** Use `Memory.open`. */
  constructor(token, handle) {
    if (token !== OPENING) throw new TypeError('use `await Memory.open(path, options)`');
    this.#native = handle;
  }

  /**
   * Opens (or creates) the store at `path`: a file, `":memory:"` for a store in memory, or a
   * PostgreSQL URL (`postgres://user:password@host:5432/db` or `postgresql://…`; the database
   * needs the pgvector extension, and URL parameters such as
   * `?options=-csearch_path%3Dmy_schema%2Cpublic` pass on to the server) or a libpq
   * connection string (`host=db dbname=memories user=agent password='…'`, starting with a
   * libpq keyword and `=`). The password never appears in `location` or in error messages.
   * `options.embedder`: `"local"` (default: the all-MiniLM-L6-v2 model, found locally),
   * `{provider: "local", modelDir}`, `"none"` (vectors come with every call) or
   * `{provider: "hashing", dimensions}` (deterministic, for tests) or a remote
   * OpenAI-compatible endpoint (`{provider: "openai" | "zhipu" | "ollama" |
   * "openai_compatible", model, apiKey, baseUrl, dimensions, timeoutMs, maxRetries}`);
   * `persistIndex`, `index`, `search` (defaults of every search); `llm` (the chat model of
   * `addMessages` and `chat`: `{provider, model, apiKey, baseUrl, timeoutMs, maxRetries,
   * temperature, maxTokens, jsonMode}`) and `prompts` (`{factExtraction, decisions,
   * procedural, chat}`);
   * `plugins` (`{cacheSize}`: how many plugins are kept compiled, default 16);
   * `postgres` (the connection pool of a store opened by URL: `{poolSize, connectTimeoutMs,
   * poolTimeoutMs, statementTimeoutMs}`). Opening calls no model; a PostgreSQL store
   * connects to its server (StorageError when it cannot be reached or refuses the login).
   */
  static async open(path, options) {
    str('path', path);
    const wire = request('options', options, OPEN);
    let handle;
    try {
      handle = await native.open(path, JSON.stringify(wire));
    } catch (e) {
      throw fromNative(e);
    }
    return new Memory(OPENING, handle);
  }

  /** The store file, or null for a store in memory or on a PostgreSQL server. */
  get path() {
    return this.#native.path ?? null;
  }

  /** Where the store lives: its file, `":memory:"`, or its URL with the password hidden. */
  get location() {
    return this.#native.location;
  }

  /** The embedding model's id, or null without an embedder. */
  get embeddingModel() {
    return this.#native.embeddingModel ?? null;
  }

  /** Whether `close` was called. */
  get closed() {
    return this.#native.closed;
  }

  /** The knowledge graph kept in this store: entities and the relations between them. */
  get graph() {
    this.#graph ??= new Graph(GRAPH, (op, wire) => this.#call(op, wire));
    return this.#graph;
  }

  /** Runs operation `op` of the core's one dispatch with its request (an object of the wire's
   * snake_case keys) and the caller's embeddings; its parsed result. */
  #call(op, wire, vector, vectors) {
    return settle(this.#native.call(op, JSON.stringify(wire ?? {}), vector, vectors));
  }

  /** Adds a memory: `{id, added}` (`added: false` when the same content is already stored in
   * the same scope; `id` is then the stored one's). */
  async add(content, options) {
    str('content', content);
    const wire = { ...request('options', options, ADD), content };
    return await this.#call('add', wire);
  }

  /**
   * Remembers a conversation: `messages` is a string (one user message), a message
   * `{role: "user" | "assistant" | "system", content, name?}` or an array of them. With the
   * store's `llm` and `options.infer` (default true) the model extracts facts and decides
   * whether each one adds, updates or deletes a memory of the scope (which inference needs:
   * `userId`, `agentId`, `runId` or `orgId`); otherwise each non-system message is stored as
   * it is. Resolves with the events, `[{id, memory, event: "ADD" | "UPDATE" | "DELETE" |
   * "NONE", previous_memory?}]`; a model failure rejects with LlmError, the store unchanged.
   */
  async addMessages(messages, options) {
    const items = messagesArg(messages);
    const wire = { ...request('options', options, ADD_MESSAGES), messages: items };
    return await this.#call('add_messages', wire);
  }

  /**
   * Answers the last user message with the store's chat model, given the memories that bear
   * on it, then keeps the turn as working memory and remembers what the exchange taught.
   * `messages`: a string (one user message), a message `{role, content, name?, observed_at?}`
   * or an array of them, the last one the user's. Options: the scope (required: `userId`,
   * `agentId`, `runId` or `orgId`; long-term memories are recalled from the scope without its
   * `runId`, working memory from the whole scope), the recall (`limit`, `threshold`,
   * `filters`, `mode`, `asOf`, `includeGlobal`, `queryTurns`), the session (`sessionWindow`:
   * how many of its latest turns come back as working memory, 0 keeps none;
   * `workingTtlSeconds`), the prompt (`maxMemoryTokens`, `prompt`: a system prompt with
   * `{memories}`) and `remember` (`"inline"`, the default; `"background"`: the reply's
   * `remember.handle` goes to `remembered`; `"off"`). Resolves with `{answer, memories_used,
   * citations, working_memory_id?, remember, model}`: `citations` map the numbers `[n]` the
   * answer cites to memory ids. Rejects with UnsupportedError without a chat model,
   * InvalidInputError for a bad request, LlmError when the model fails; none of them stores
   * anything.
   */
  async chat(messages, options) {
    const items = messagesArg(messages);
    const wire = { ...request('options', options, CHAT), messages: items };
    return await this.#call('chat', wire);
  }

  /**
   * As `chat`, with the answer streamed: returns at once a ChatStream, an async iterable of
   * the answer's pieces of text as the model writes them, whose `result` resolves with the
   * same reply as `chat`'s once the call has ended. `options.signal` (an AbortSignal) cancels
   * the call, as `stream.cancel()` and leaving a `for await` loop early do: the iteration and
   * `result` then reject with CancelledError (code `AM_CANCELLED`) and nothing is stored.
   * Errors of the call (those of `chat`) reject the iteration, after the pieces that came
   * before them, and `result`. A bad argument type throws a TypeError here.
   */
  chatStream(messages, options) {
    const items = messagesArg(messages);
    // The signal stays here; the other options go to the core.
    let signal;
    let rest = options;
    if (isObject(options) && 'signal' in options) {
      ({ signal, ...rest } = options);
      signal = signal == null ? undefined : signalArg('options.signal', signal);
    }
    const wire = { ...request('options', rest, CHAT), messages: items };
    const handle = signal?.aborted ? null : this.#native.callStream('chat', JSON.stringify(wire));
    return new ChatStream(STREAM, handle, signal);
  }

  /**
   * The outcome of a chat's background remembering, by the handle its reply gave
   * (`remember.handle`): `{status: "running", handle}` while it runs, unless
   * `options.wait` waits for its end; then `{status: "done", events}` or `{status: "failed",
   * error: {code, message}}`. An outcome is handed out once: asking again for a finished
   * one, or for an unknown handle, rejects with NotFoundError.
   */
  async remembered(handle, options) {
    str('handle', handle);
    const wire = { ...request('options', options, REMEMBERED), handle };
    return await this.#call('chat_remembered', wire);
  }

  /** As `add`, with the caller's embedding of the content. */
  async addWithVector(content, embedding, options) {
    str('content', content);
    const v = vector('vector', embedding);
    const wire = { ...request('options', options, ADD), content };
    return await this.#call('add', wire, v);
  }

  /** Adds several memories (strings or `{content, userId…}` objects) in one transaction:
   * `[{id, added}, …]` in order. */
  async addBatch(memories) {
    const items = list('memories', memories).map((m, i) => newMemory(`memories[${i}]`, m));
    return await this.#call('add_batch', { memories: items });
  }

  /** As `addBatch`, with one embedding per memory, in order. */
  async addBatchWithVectors(memories, vectors) {
    const items = list('memories', memories).map((m, i) => newMemory(`memories[${i}]`, m));
    const vs = list('vectors', vectors).map((v, i) => vector(`vectors[${i}]`, v));
    return await this.#call('add_batch', { memories: items }, undefined, vs);
  }

  /** Searches by meaning, keywords, phrase or typos (`options.mode`); hits, best first. */
  async search(query, options) {
    str('query', query);
    const wire = { ...request('options', options, SEARCH), query };
    return await this.#call('search', wire);
  }

  /** As `search`, with the caller's embedding of the query (the text, which may be empty in
   * vector mode, serves the keyword engines). */
  async searchWithVector(query, embedding, options) {
    str('query', query);
    const v = vector('vector', embedding);
    const wire = { ...request('options', options, SEARCH), query };
    return await this.#call('search', wire, v);
  }

  /** One memory by id (expired ones too); NotFoundError if there is none. With
   * `options.asOf`, the version that was current at that moment (NotFoundError if the memory
   * did not exist then). */
  async get(id, options) {
    str('id', id);
    return await this.#call('get', { ...request('options', options, GET), id });
  }

  /** Every kept version of a memory, oldest first, each with the interval during which it
   * was the current one (`valid_from_tx`, `valid_to_tx`). */
  async versions(id) {
    str('id', id);
    return await this.#call('versions', { id });
  }

  /** One page of memories: `{items, next_cursor}`; pass `next_cursor` as `cursor` for the
   * next page. `withTotal: true` adds `total`, how many memories the selection matches in all
   * (counted in the page's own snapshot). */
  async list(options) {
    return await this.#call('list', request('options', options, LIST));
  }

  /** How many (unexpired) memories the scope and filters select; with `asOf`, how many they
   * selected at that moment. */
  async count(options) {
    return await this.#call('count', request('options', options, COUNT));
  }

  /** Changes a memory's content, metadata (replaced whole, or with `mergeMetadata: true`
   * merged into the stored one in the same transaction), kind or expiry (`null` removes it);
   * the updated memory. */
  async update(id, changes) {
    str('id', id);
    const wire = request('changes', changes, UPDATE);
    return await this.#call('update', { ...wire, id });
  }

  /** As `update`, with the caller's embedding of the new content. */
  async updateWithVector(id, changes, embedding) {
    str('id', id);
    const wire = request('changes', changes, UPDATE);
    const v = vector('vector', embedding);
    return await this.#call('update', { ...wire, id }, v);
  }

  /** Deletes a memory (its history stays). */
  async delete(id) {
    str('id', id);
    await this.#call('delete', { id });
  }

  /** Deletes what a scope and/or filters select (expired memories too); how many. Refused
   * with neither: `reset` deletes everything. */
  async deleteAll(options) {
    return await this.#call('delete_all', request('options', options, SELECT));
  }

  /** A memory's history rows, oldest first (also after it was deleted). */
  async history(id) {
    str('id', id);
    return await this.#call('history', { id });
  }

  /** Replaces a memory's fact with a new memory (same scope; kind and metadata the old one's
   * unless given) without losing the old one: its valid time ends where the new one's begins
   * (`validFrom`, default now), `superseded_by` names the new memory, and reads hide it
   * unless they include superseded memories. Resolves with `{memory, superseded, change_id}`;
   * `undo(change_id)` reverts both. */
  async supersede(id, content, options) {
    str('id', id);
    str('content', content);
    return await this.#call('supersede', { ...request('options', options, SUPERSEDE), id, content });
  }

  /** Undoes a change (a history row's `change_id`) as a new change; refused when a memory it
   * touched changed since, unless `options.force`. Resolves with
   * `{change_id, undid, restored, removed}`. */
  async undo(changeId, options) {
    str('changeId', changeId);
    return await this.#call('undo', { ...request('options', options, UNDO), change_id: changeId });
  }

  /** Restores a memory to one of its kept versions, as a new version (a deleted memory comes
   * back with its id). Resolves with `{change_id, restored, removed}`. */
  async revert(id, toVersion) {
    str('id', id);
    return await this.#call('revert', { id, to_version: num('toVersion', toVersion) });
  }

  /** Deletes every memory, all history and the embedding cache. */
  async reset() {
    await this.#call('reset');
  }

  /** Removes the past versions the store's `historyRetention` option does not keep (none by
   * default): `{versions}`, how many. */
  async pruneVersions() {
    return await this.#call('prune_versions');
  }

  /** Deletes the memories whose expiry has passed; how many. */
  async purgeExpired() {
    return await this.#call('purge_expired');
  }

  /** Saves the vector index beside the store now (`close` does it too). */
  async flush() {
    await this.#call('flush');
  }

  /**
   * Copies every memory (content, scope, kind, metadata, times, vector) and the whole
   * history, deleted memories' included, into `target`, an empty store: a SQLite file into
   * PostgreSQL and back, or between any two stores; ids and times are kept. One transaction
   * on the target: all of it or nothing. Resolves with `{memories, history}`, what was
   * copied; rejects with AlreadyExistsError when the target holds anything.
   */
  async copyInto(target) {
    if (!(target instanceof Memory)) throw argError('target', 'a Memory', target);
    return await settle(this.#native.copyInto(target.#native));
  }

  // ----------------------------------------------------------------------------- plugins

  /**
   * Registers a WASM plugin (run by Extism, sandboxed). `manifest`: `{id, name?, version?,
   * kind?: "hook" | "function", capabilities?, config?, allowedHosts?, allowedPaths?,
   * limits?: {memoryPages?, timeoutMs?, fuel?}, onError?: "fail" | "skip", path?}`. The code
   * is `manifest.path` (a .wasm or .wat file, reloaded when it changes) or `wasm`: the module
   * as bytes (binary or WebAssembly text) or a string of WebAssembly text. Hook plugins run
   * inside `add` (`on_add`) and `search` (`before_search`, `after_search`). Resolves with the
   * plugin's info (snake_case keys, as every result).
   */
  async registerPlugin(manifest, wasm) {
    obj('manifest', manifest);
    const wire = request('manifest', manifest, MANIFEST);
    const code = wasm === undefined || wasm === null ? undefined : bytesArg('wasm', wasm);
    return await settle(this.#native.registerPlugin(JSON.stringify(wire), code));
  }

  /** The registered plugins' infos, in registration order. */
  async plugins() {
    return await this.#call('plugin_list');
  }

  /** Removes a plugin; NotFoundError if there is none with this id. */
  async unregisterPlugin(id) {
    str('id', id);
    await this.#call('plugin_unregister', { id });
  }

  /** Compiles a plugin now (it is otherwise compiled on first use); its info. */
  async loadPlugin(id) {
    str('id', id);
    return await this.#call('plugin_load', { id });
  }

  /** Drops a plugin's compiled code; it stays registered. Its info. */
  async unloadPlugin(id) {
    str('id', id);
    return await this.#call('plugin_unload', { id });
  }

  /** Compiles a plugin again from its source (a file: as it is now); its info. */
  async reloadPlugin(id) {
    str('id', id);
    return await this.#call('plugin_reload', { id });
  }

  /**
   * Calls export `fn` of plugin `id` with `input` (a Buffer, a Uint8Array or a string, sent as
   * UTF-8; empty when left out) and resolves with its output as a Buffer. The host functions
   * the plugin calls (`am_search`, `am_get`, `am_add`…) see only `scope` (`{userId, agentId,
   * runId, orgId}`; none: the global layer).
   */
  async callPlugin(id, fn, input, scope) {
    str('id', id);
    str('fn', fn);
    const bytes = input === undefined || input === null ? Buffer.alloc(0) : bytesArg('input', input);
    const wire = request('scope', scope, SCOPE);
    try {
      return await this.#native.callPlugin(id, fn, bytes, JSON.stringify(wire));
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** Saves the index and closes the store; later calls fail with ClosedError. Calls still
   * running finish first. Closing again does nothing. */
  async close() {
    await settle(this.#native.close());
  }
}

/** The error table of the core, as the addon reports it: `[{code, name, node}]`. */
function errorCodes() {
  return native.errorCodes();
}

/** The version of the native addon. */
const addonVersion = native.version();

module.exports = {
  Memory,
  AgentMemError,
  InvalidInputError,
  NotFoundError,
  AlreadyExistsError,
  StorageError,
  VectorIndexError,
  EmbeddingError,
  ModelUnavailableError,
  LlmError,
  PluginError,
  PermissionDeniedError,
  IoError,
  CorruptedError,
  ClosedError,
  UnsupportedError,
  InternalError,
  CancelledError,
  errorCodes,
  addonVersion,
};
