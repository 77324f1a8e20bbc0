'use strict';
// The package's declarations against what it really does, and against the core's schema
// (tests/dispatch/schema.json, derived from the Rust types; a Rust test fails when stale):
//
// - index.d.ts declares exactly what index.js exports, and exactly the methods of Memory;
// - each options interface of index.d.ts has the keys of index.js's option table, and that
//   table maps them onto exactly the keys of the core's request;
// - each result interface has the keys of the core's result, optional where the core leaves
//   them out.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const ts = require('typescript');

const NODE_DIR = path.join(__dirname, '..');
const SCHEMA = JSON.parse(
  fs.readFileSync(path.join(NODE_DIR, '..', 'tests', 'dispatch', 'schema.json'), 'utf8'),
);
const OPERATIONS = SCHEMA.operations;

const keysOf = (schema) => new Set(Object.keys(schema.properties ?? {}));
const requiredOf = (schema) => new Set(schema.required ?? []);
const sorted = (set) => [...set].sort();

// ------------------------------------------------------------------- index.d.ts, parsed

const source = ts.createSourceFile(
  'index.d.ts',
  fs.readFileSync(path.join(NODE_DIR, 'index.d.ts'), 'utf8'),
  ts.ScriptTarget.Latest,
  true,
);
const declarations = new Map();
for (const statement of source.statements) {
  if (statement.name) declarations.set(statement.name.text, statement);
}
const exported = (node) => node.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);

/** The properties of a declared object type: name → optional?, `extends` and `&` included. */
function properties(name) {
  const node = declarations.get(name);
  assert.ok(node, `index.d.ts declares ${name}`);
  const out = new Map();
  const addMembers = (members) => {
    for (const m of members) {
      if (ts.isPropertySignature(m)) out.set(m.name.text, Boolean(m.questionToken));
    }
  };
  const addType = (type) => {
    if (ts.isTypeReferenceNode(type)) {
      for (const [k, v] of properties(type.typeName.text)) out.set(k, v);
    } else if (ts.isTypeLiteralNode(type)) {
      addMembers(type.members);
    } else if (ts.isIntersectionTypeNode(type)) {
      type.types.forEach(addType);
    } else {
      assert.fail(`${name}: a type index.d.ts checks must be an object type`);
    }
  };
  if (ts.isInterfaceDeclaration(node)) {
    for (const clause of node.heritageClauses ?? []) {
      for (const base of clause.types) {
        for (const [k, v] of properties(base.expression.text)) out.set(k, v);
      }
    }
    addMembers(node.members);
  } else if (ts.isTypeAliasDeclaration(node)) {
    addType(node.type);
  } else {
    assert.fail(`${name} is not an interface or a type`);
  }
  return out;
}

// ------------------------------------------------------- index.js's option tables, read

/** index.js run in a context of its own with a stand-in addon, to read its option tables
 * (module-level constants: camelCase option → [wire key, check], or FIRST for a positional
 * argument). */
function optionTables() {
  const addon = { version: () => '0', errorCodes: () => [] };
  const context = vm.createContext({
    require: (id) => (id.endsWith('.node') ? addon : require(id)),
    module: { exports: {} },
    __dirname: NODE_DIR,
    process,
    Buffer,
  });
  vm.runInContext(fs.readFileSync(path.join(NODE_DIR, 'index.js'), 'utf8'), context);
  return vm.runInContext(
    `({ FIRST, ADD, NEW_MEMORY, SELECT, GET, COUNT, LIST, SEARCH, UPDATE, SUPERSEDE, UNDO, ADD_MESSAGES,
      CHAT, REMEMBERED, WEIGHTS, OPEN, PROMPTS, MANIFEST,
      GRAPH_ADD_ENTITY, GRAPH_ADD_RELATION, GRAPH_ENTITIES,
      GRAPH_RELATIONS, GRAPH_NEIGHBORS, GRAPH_PATH, GRAPH_SPLIT_ENTITY, GRAPH_IMPORT,
      GRAPH_EXPORT, Graph })`,
    context,
  );
}
const TABLES = optionTables();
const camelKeys = (table) => new Set(Object.keys(table).filter((k) => table[k] !== TABLES.FIRST));
const wireKeys = (table) =>
  new Set(Object.entries(table).map(([k, spec]) => (spec === TABLES.FIRST ? k : spec[0])));

// ------------------------------------------------------------------------------ the tests

test('index.d.ts declares exactly what index.js exports', () => {
  const declared = new Set();
  for (const s of source.statements) {
    if (!exported(s)) continue;
    if (ts.isClassDeclaration(s) || ts.isFunctionDeclaration(s)) declared.add(s.name.text);
    if (ts.isVariableStatement(s)) {
      for (const d of s.declarationList.declarations) declared.add(d.name.text);
    }
  }
  const actual = new Set(Object.keys(require('..')));
  assert.deepEqual(sorted(declared), sorted(actual));
});

test('index.d.ts declares exactly the methods and properties of Memory', () => {
  const { Memory } = require('..');
  const node = declarations.get('Memory');
  const members = node.members.filter((m) => m.name && !ts.isConstructorDeclaration(m));
  const statics = (m) => m.modifiers?.some((x) => x.kind === ts.SyntaxKind.StaticKeyword);
  const declared = members.filter((m) => !statics(m)).map((m) => m.name.text);
  const declaredStatic = members.filter(statics).map((m) => m.name.text);
  const actual = Object.getOwnPropertyNames(Memory.prototype).filter((n) => n !== 'constructor');
  const actualStatic = Object.getOwnPropertyNames(Memory).filter(
    (n) => !['length', 'name', 'prototype'].includes(n),
  );
  assert.deepEqual(sorted(new Set(declared)), sorted(new Set(actual)));
  assert.deepEqual(sorted(new Set(declaredStatic)), sorted(new Set(actualStatic)));
});

test('index.d.ts declares exactly the methods of memory.graph', () => {
  const declared = declarations.get('Graph').members.map((m) => m.name.text);
  const actual = Object.getOwnPropertyNames(TABLES.Graph.prototype).filter((n) => n !== 'constructor');
  assert.deepEqual(sorted(new Set(declared)), sorted(new Set(actual)));
});

// Each options interface, its table in index.js, and the core request the table builds
// (with the keys that come from positional arguments: content, query, id, vector…).
const REQUESTS = [
  ['AddOptions', 'ADD', 'add', ['vector']],
  ['NewMemory', 'NEW_MEMORY', 'add_batch.memories', []],
  ['CountOptions', 'COUNT', 'count', []],
  ['GetOptions', 'GET', 'get', ['id']],
  ['SupersedeOptions', 'SUPERSEDE', 'supersede', ['id']],
  ['UndoOptions', 'UNDO', 'undo', ['change_id']],
  ['SelectOptions', 'SELECT', 'delete_all', []],
  ['ListOptions', 'LIST', 'list', []],
  ['SearchOptions', 'SEARCH', 'search', ['vector']],
  ['MemoryChanges', 'UPDATE', 'update', ['id', 'vector']],
  ['AddMessagesOptions', 'ADD_MESSAGES', 'add_messages', []],
  ['ChatOptions', 'CHAT', 'chat', []],
  ['RememberedOptions', 'REMEMBERED', 'chat_remembered', []],
  ['AddEntityOptions', 'GRAPH_ADD_ENTITY', 'graph_add_entity', []],
  ['AddRelationOptions', 'GRAPH_ADD_RELATION', 'graph_add_relation', []],
  ['EntitiesOptions', 'GRAPH_ENTITIES', 'graph_entities', []],
  ['RelationsOptions', 'GRAPH_RELATIONS', 'graph_relations', []],
  ['NeighborsOptions', 'GRAPH_NEIGHBORS', 'graph_neighbors', []],
  ['PathOptions', 'GRAPH_PATH', 'graph_path', []],
  ['SplitEntityOptions', 'GRAPH_SPLIT_ENTITY', 'graph_split_entity', []],
  ['ImportOptions', 'GRAPH_IMPORT', 'graph_import', ['triples']],
  ['ExportOptions', 'GRAPH_EXPORT', 'graph_export', ['format']],
  ['PluginRegistration', 'MANIFEST', 'plugin_register', []],
  ['FusionWeights', 'WEIGHTS', 'types.FusionWeights', []],
  ['OpenOptions', 'OPEN', 'types.OpenOptions', []],
  ['PromptOptions', 'PROMPTS', 'types.OpenOptions.prompts', []],
];

function coreRequest(where) {
  if (where === 'add_batch.memories') return OPERATIONS.add_batch.request.properties.memories.items;
  if (where.startsWith('types.')) {
    // A type, or a field of one: `types.OpenOptions.prompts`.
    const [type, ...fields] = where.slice('types.'.length).split('.');
    return fields.reduce((at, field) => at.properties[field], SCHEMA.types[type]);
  }
  return OPERATIONS[where].request;
}

for (const [declared, table, core, positional] of REQUESTS) {
  test(`${declared} = index.js ${table} → the core's ${core} request`, () => {
    assert.deepEqual(sorted(new Set(properties(declared).keys())), sorted(camelKeys(TABLES[table])));
    const sent = wireKeys(TABLES[table]);
    for (const key of positional) sent.add(key);
    assert.deepEqual(sorted(sent), sorted(keysOf(coreRequest(core))));
  });
}

test('ChatStreamOptions = ChatOptions and the signal, which stays in Node', () => {
  const stream = sorted(new Set(properties('ChatStreamOptions').keys()));
  assert.deepEqual(stream, sorted(new Set([...properties('ChatOptions').keys(), 'signal'])));
  assert.ok(!('signal' in TABLES.CHAT));
});

test('every operation of the core is a method of Memory', () => {
  const { Memory } = require('..');
  const METHODS = {
    add: 'add',
    add_batch: 'addBatch',
    add_messages: 'addMessages',
    chat: 'chat',
    chat_remembered: 'remembered',
    get: 'get',
    list: 'list',
    count: 'count',
    update: 'update',
    delete: 'delete',
    delete_all: 'deleteAll',
    history: 'history',
    versions: 'versions',
    supersede: 'supersede',
    undo: 'undo',
    revert: 'revert',
    search: 'search',
    purge_expired: 'purgeExpired',
    prune_versions: 'pruneVersions',
    flush: 'flush',
    reset: 'reset',
    plugin_register: 'registerPlugin',
    plugin_list: 'plugins',
    plugin_load: 'loadPlugin',
    plugin_unload: 'unloadPlugin',
    plugin_reload: 'reloadPlugin',
    plugin_unregister: 'unregisterPlugin',
    graph_add_entity: 'graph.addEntity',
    graph_add_relation: 'graph.addRelation',
    graph_entity: 'graph.entity',
    graph_entities: 'graph.entities',
    graph_relations: 'graph.relations',
    graph_neighbors: 'graph.neighbors',
    graph_path: 'graph.path',
    graph_merge_entities: 'graph.mergeEntities',
    graph_rename_entity: 'graph.renameEntity',
    graph_split_entity: 'graph.splitEntity',
    graph_entity_history: 'graph.entityHistory',
    graph_import: 'graph.importTriples',
    graph_export: 'graph.export',
  };
  assert.deepEqual(sorted(new Set(Object.keys(METHODS))), sorted(new Set(Object.keys(OPERATIONS))));
  // `graph.x`: method x of the object `memory.graph` (the getter is on Memory's prototype).
  const namespaces = { graph: TABLES.Graph.prototype };
  for (const method of Object.values(METHODS)) {
    const [namespace, name] = method.includes('.') ? method.split('.') : [null, method];
    if (namespace !== null) {
      const getter = Object.getOwnPropertyDescriptor(Memory.prototype, namespace)?.get;
      assert.equal(typeof getter, 'function', `Memory.prototype.${namespace} is a getter`);
    }
    const owner = namespace === null ? Memory.prototype : namespaces[namespace];
    assert.equal(typeof owner[name], 'function', method);
  }
});

// Each result interface and the core type it declares: a type of the schema, or a path in
// it (the graph's types are its operations' results).
const RESULTS = [
  ['AddResult', 'AddOutcome'],
  ['MemoryRecord', 'MemoryRecord'],
  ['SearchHit', 'SearchHit'],
  ['ListPage', 'ListPage'],
  ['HistoryEntry', 'HistoryEntry'],
  ['MemoryEvent', 'MemoryEvent'],
  ['CopyReport', 'CopyReport'],
  ['Superseded', 'Superseded'],
  ['Undone', 'Undone'],
  ['Pruned', 'Pruned'],
  ['PluginInfo', 'PluginInfo'],
  ['PluginLogEntry', 'PluginLogEntry'],
  ['Entity', 'operations.graph_add_entity.result'],
  ['RelationAdded', 'operations.graph_add_relation.result'],
  ['Relation', 'operations.graph_relations.result.items'],
  ['EntityDetail', 'operations.graph_entity.result'],
  ['Neighbor', 'operations.graph_neighbors.result.items'],
  ['Split', 'Split'],
  ['EntityEvent', 'EntityEvent'],
  ['ImportReport', 'ImportReport'],
  ['ChatReply', 'operations.chat.result'],
  ['MemoryUsed', 'operations.chat.result.properties.memories_used.items'],
  ['Citation', 'operations.chat.result.properties.citations.items'],
  ['Remembered', 'operations.chat_remembered.result'],
];

function coreType(where) {
  if (!where.includes('.')) return SCHEMA.types[where];
  const schema = where.split('.').reduce((at, key) => at?.[key], SCHEMA);
  assert.ok(schema, `the schema has ${where}`);
  return schema;
}

for (const [declared, core] of RESULTS) {
  test(`${declared} has the keys of the core's ${core}`, () => {
    const props = properties(declared);
    const schema = coreType(core);
    assert.deepEqual(sorted(new Set(props.keys())), sorted(keysOf(schema)));
    const required = [...props].filter(([, optional]) => !optional).map(([k]) => k);
    assert.deepEqual(sorted(new Set(required)), sorted(requiredOf(schema)));
  });
}
