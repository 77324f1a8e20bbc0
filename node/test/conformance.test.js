'use strict';
// The Node runner of the language-neutral conformance cases (tests/conformance/*.json; format
// and rules: tests/conformance/README.md; reference runner: core/tests/all/conformance.rs).
// Every step goes through the public wrapper with its camelCase options, so the cases check
// the option mapping and the error classes as well as the engine.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { Memory, AgentMemError } = require('..');

const TESTS = path.join(__dirname, '..', '..', 'tests');
const CASES = path.join(TESTS, 'conformance');
/** Fewer files or steps than this means cases went missing (as in the Rust runner). */
const MIN_FILES = 12;
const MIN_STEPS = 500;

const NODE_CODE = new Map(
  JSON.parse(fs.readFileSync(path.join(TESTS, 'error_codes.json'), 'utf8')).codes.map((c) => [
    c.name,
    c.node,
  ]),
);

/** A mistake in the case file itself (not an API failure). */
class CaseError extends Error {}

const STEP_KEYS = new Set([
  'op',
  'args',
  'expect',
  'expect_error',
  'error_contains',
  'save_id',
  'save_ids',
  'save_cursor',
  'save_time',
  'note',
]);

function resolve(value, vars) {
  if (typeof value === 'string') {
    if (value.startsWith('$$')) return value.slice(1);
    if (value.startsWith('$')) {
      const name = value.slice(1);
      if (!vars.has(name)) throw new CaseError(`unknown reference ${value}`);
      return vars.get(name);
    }
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => resolve(v, vars));
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === '$repeat') {
      const spec = value.$repeat;
      if (!Array.isArray(spec) || typeof spec[0] !== 'string' || !Number.isInteger(spec[1])) {
        throw new CaseError(`bad $repeat ${JSON.stringify(value)}`);
      }
      return spec[0].repeat(spec[1]);
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, vars)]));
  }
  return value;
}

function only(args, allowed) {
  for (const key of Object.keys(args)) {
    if (!allowed.includes(key)) {
      throw new CaseError(`unknown argument ${key} (expected one of ${allowed.join(', ')})`);
    }
  }
}

/** `user_id` → `userId`: the cases speak JSON, the wrapper camelCase. */
function camel(key) {
  return key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
}

/** The options object of a call: the given keys, camelCased (nested values as they are,
 * except the fusion weights, whose keys are options too). */
function options(args, keys) {
  const out = {};
  for (const key of keys) {
    if (!(key in args)) continue;
    let value = args[key];
    if (key === 'weights' && value !== null && typeof value === 'object') {
      value = Object.fromEntries(Object.entries(value).map(([k, v]) => [camel(k), v]));
    }
    out[camel(key)] = value;
  }
  return out;
}

/** Numbers, or "NaN" / "Infinity" / "-Infinity" (JSON has no such numbers). */
function vector(value) {
  if (!Array.isArray(value)) throw new CaseError(`vector must be a list, got ${value}`);
  return value.map((x) => {
    if (typeof x === 'number') return x;
    if (x === 'NaN') return NaN;
    if (x === 'Infinity') return Infinity;
    if (x === '-Infinity') return -Infinity;
    throw new CaseError(`bad vector element ${JSON.stringify(x)}`);
  });
}

const SCOPE = ['user_id', 'agent_id', 'run_id', 'org_id'];
const ADD_KEYS = ['content', ...SCOPE, 'kind', 'metadata', 'expires_at'];
const ADD_OPTIONS = ADD_KEYS.slice(1);
const SELECT_KEYS = [...SCOPE, 'filters'];
const LIST_KEYS = [
  ...SELECT_KEYS,
  'include_global',
  'include_expired',
  'order',
  'limit',
  'offset',
  'cursor',
];
const SEARCH_OPTIONS = [
  'mode',
  'limit',
  'threshold',
  ...SELECT_KEYS,
  'include_global',
  'include_expired',
  'weights',
];

/** The shape shared by list and search results: the items and handy projections. */
function itemsResult(items) {
  return {
    count: items.length,
    ids: items.map((i) => i.id),
    contents: items.map((i) => i.content),
    items,
  };
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs one operation; the object the expectations are matched against. */
async function runOp(m, op, args) {
  switch (op) {
    case 'add':
      only(args, ADD_KEYS);
      return m.add(args.content, options(args, ADD_OPTIONS));
    case 'add_with_vector':
      only(args, [...ADD_KEYS, 'vector']);
      if (!('vector' in args)) throw new CaseError('add_with_vector needs a vector');
      return m.addWithVector(args.content, vector(args.vector), options(args, ADD_OPTIONS));
    case 'add_batch': {
      only(args, ['memories']);
      if (!Array.isArray(args.memories)) throw new CaseError('memories must be a list');
      const items = args.memories.map((item) => {
        if (item === null || typeof item !== 'object') throw new CaseError('each memory is an object');
        only(item, [...ADD_KEYS, 'vector']);
        return item;
      });
      const withVectors = items.filter((i) => 'vector' in i).length;
      const memories = items.map((i) => ({ content: i.content, ...options(i, ADD_OPTIONS) }));
      let outcomes;
      if (withVectors === 0) outcomes = await m.addBatch(memories);
      else if (withVectors === items.length) {
        outcomes = await m.addBatchWithVectors(
          memories,
          items.map((i) => vector(i.vector)),
        );
      } else throw new CaseError('either every memory of a batch has a vector or none has');
      return { ids: outcomes.map((o) => o.id), added: outcomes.map((o) => o.added) };
    }
    case 'get':
      only(args, ['id']);
      return m.get(args.id);
    case 'list': {
      only(args, LIST_KEYS);
      const page = await m.list(options(args, LIST_KEYS));
      return { ...itemsResult(page.items), has_more: page.next_cursor !== null, next_cursor: page.next_cursor };
    }
    case 'count':
      only(args, SELECT_KEYS);
      return { count: await m.count(options(args, SELECT_KEYS)) };
    case 'update': {
      only(args, ['id', 'content', 'metadata', 'kind', 'expires_at', 'vector']);
      const changes = options(args, ['content', 'metadata', 'kind', 'expires_at']);
      if ('vector' in args) return m.updateWithVector(args.id, changes, vector(args.vector));
      return m.update(args.id, changes);
    }
    case 'delete':
      only(args, ['id']);
      await m.delete(args.id);
      return {};
    case 'delete_all':
      only(args, SELECT_KEYS);
      return { deleted: await m.deleteAll(options(args, SELECT_KEYS)) };
    case 'history': {
      only(args, ['id']);
      const entries = await m.history(args.id);
      return { count: entries.length, events: entries.map((e) => e.event), entries };
    }
    case 'search': {
      only(args, ['query', 'vector', ...SEARCH_OPTIONS]);
      const query = args.query ?? '';
      const opts = options(args, SEARCH_OPTIONS);
      const hits =
        'vector' in args
          ? await m.searchWithVector(query, vector(args.vector), opts)
          : await m.search(query, opts);
      return itemsResult(hits);
    }
    case 'reset':
      only(args, []);
      await m.reset();
      return {};
    case 'purge_expired':
      only(args, []);
      return { deleted: await m.purgeExpired() };
    case 'mark_time': {
      only(args, []);
      // Strictly after everything before, strictly before everything after.
      await sleep(3);
      const time = new Date().toISOString();
      await sleep(3);
      return { time };
    }
    default:
      throw new CaseError(`unknown op ${JSON.stringify(op)}`);
  }
}

// ------------------------------------------------------------------------------- matching

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** null matches null or absent; objects by the keys they name (a `metadata` object whole);
 * lists element by element; numbers within 1e-4. */
function matches(expected, actual, exact) {
  const a = actual === undefined ? null : actual;
  if (expected === null) return a === null;
  if (typeof expected === 'number' && typeof a === 'number') return Math.abs(expected - a) <= 1e-4;
  if (Array.isArray(expected)) {
    return Array.isArray(a) && a.length === expected.length && expected.every((e, i) => matches(e, a[i], exact));
  }
  if (isObject(expected)) {
    if (!isObject(a)) return false;
    if (exact && Object.keys(a).length !== Object.keys(expected).length) return false;
    return Object.entries(expected).every(([k, v]) => matches(v, a[k], exact || k === 'metadata'));
  }
  return expected === a;
}

function multiset(list) {
  if (!Array.isArray(list)) return null;
  const counts = new Map();
  for (const item of list) {
    const key = JSON.stringify(item);
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  return counts;
}

function sameMultiset(a, b) {
  const x = multiset(a);
  const y = multiset(b);
  if (x === null || y === null || x.size !== y.size) return false;
  for (const [k, n] of x) if (y.get(k) !== n) return false;
  return true;
}

/** Every expectation of a step against the op's result; what failed. */
function check(expect, result) {
  const failures = [];
  const fail = (key, expected, got) =>
    failures.push(`${key}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
  for (const [key, expected] of Object.entries(expect)) {
    const ids = result.ids;
    switch (key) {
      case 'ids_in_order':
        if (!matches(expected, ids, false)) fail(key, expected, ids);
        break;
      case 'contents_in_order':
        if (!matches(expected, result.contents, false)) fail(key, expected, result.contents);
        break;
      case 'ids_any_order':
      case 'contents_any_order': {
        const field = key === 'ids_any_order' ? 'ids' : 'contents';
        if (!sameMultiset(expected, result[field])) fail(key, expected, result[field]);
        break;
      }
      case 'includes':
      case 'excludes': {
        const got = Array.isArray(ids) ? ids : [];
        const ok =
          Array.isArray(expected) && expected.every((id) => got.includes(id) === (key === 'includes'));
        if (!ok) fail(key, expected, ids);
        break;
      }
      case 'first': {
        const first = Array.isArray(result.items) ? result.items[0] : undefined;
        if (first === undefined || !matches(expected, first, false)) fail(key, expected, first ?? null);
        break;
      }
      default:
        if (!matches(expected, result[key], key === 'metadata')) fail(key, expected, result[key] ?? null);
    }
  }
  return failures;
}

// ------------------------------------------------------------------------------- files

/** Runs one case file; the number of steps run. Throws at the first failure. */
async function runFile(file) {
  const text = fs.readFileSync(path.join(CASES, file), 'utf8');
  const kase = JSON.parse(text);
  if (kase.name !== path.basename(file, '.json')) throw new Error(`name ${kase.name} differs from the file name`);
  if (typeof kase.description !== 'string') throw new Error('description missing');
  const embedders = {
    'hashing-64': { provider: 'hashing', dimensions: 64 },
    none: 'none',
  };
  if (!(kase.embedder in embedders)) throw new Error(`unknown embedder ${kase.embedder}`);
  const memory = await Memory.open(':memory:', { embedder: embedders[kase.embedder] });
  try {
    if (!Array.isArray(kase.steps)) throw new Error('steps missing');
    const vars = new Map();
    for (const [i, step] of kase.steps.entries()) {
      const at = (msg) => new Error(`step ${i} (${step.op}): ${msg}`);
      if (!isObject(step)) throw at('not an object');
      const unknown = Object.keys(step).find((k) => !STEP_KEYS.has(k));
      if (unknown) throw at(`unknown step key ${unknown}`);
      if ('expect' in step && 'expect_error' in step) throw at('expect and expect_error together');
      let result;
      let error = null;
      try {
        const args = resolve(step.args ?? {}, vars);
        if (!isObject(args)) throw new CaseError('args must be an object');
        result = await runOp(memory, step.op, args);
      } catch (e) {
        if (e instanceof CaseError) throw at(`bad case: ${e.message}`);
        error = e;
      }
      if ('expect_error' in step) {
        if (error === null) throw at(`expected error ${step.expect_error}, got ${JSON.stringify(result)}`);
        const code = NODE_CODE.get(step.expect_error);
        if (code === undefined) throw at(`unknown error name ${step.expect_error}`);
        if (!(error instanceof AgentMemError) || error.code !== code) {
          throw at(`expected ${code}, got ${error && error.name} ${error && error.code}: ${error && error.message}`);
        }
        if ('error_contains' in step) {
          const part = resolve(step.error_contains, vars);
          if (!error.message.includes(part)) {
            throw at(`error ${JSON.stringify(error.message)} does not contain ${JSON.stringify(part)}`);
          }
        }
        continue;
      }
      if (error !== null) throw at(`unexpected error: ${error.name} ${error.code}: ${error.message}`);
      const save = (key, value) => {
        if (key in step) {
          if (typeof step[key] !== 'string') throw at(`${key} is a name`);
          vars.set(step[key], value === undefined ? null : value);
        }
      };
      save('save_id', result.id);
      save('save_cursor', result.next_cursor);
      save('save_time', result.time);
      if ('save_ids' in step) {
        if (!Array.isArray(step.save_ids)) throw at('save_ids is a list');
        step.save_ids.forEach((name, j) => vars.set(name, result.ids[j] ?? null));
      }
      if ('expect' in step) {
        let expect;
        try {
          expect = resolve(step.expect, vars);
        } catch (e) {
          throw at(e.message);
        }
        if (!isObject(expect)) throw at('expect must be an object');
        const failures = check(expect, result);
        if (failures.length > 0) throw at(failures.join('; '));
      }
    }
    return kase.steps.length;
  } finally {
    await memory.close();
  }
}

test('conformance cases', async (t) => {
  const files = fs
    .readdirSync(CASES)
    .filter((f) => f.endsWith('.json'))
    .sort();
  let steps = 0;
  let failed = 0;
  for (const file of files) {
    // Every file runs; each reports its own first failure.
    await t.test(file, async () => {
      try {
        steps += await runFile(file);
      } catch (e) {
        failed += 1;
        throw e;
      }
    });
  }
  assert.equal(failed, 0, `${failed} of ${files.length} case files failed`);
  assert.ok(files.length >= MIN_FILES, `only ${files.length} case files`);
  assert.ok(steps >= MIN_STEPS, `only ${steps} steps ran`);
  t.diagnostic(`${files.length} case files, ${steps} steps`);
});
