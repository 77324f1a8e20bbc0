'use strict';
// The knowledge graph through `memory.graph`, on a real store with the hashing embedder:
// entities resolved by name and alias within a scope, relations with valid time (a
// functional predicate closes the old object) and provenance, walks and paths, bad input
// refused, and scopes never crossed.

const test = require('node:test');
const assert = require('node:assert/strict');

const { Memory, InvalidInputError, NotFoundError } = require('..');

const HASHING = { embedder: { provider: 'hashing', dimensions: 64 } };
const DAY = 24 * 60 * 60 * 1000;

async function open(t) {
  const m = await Memory.open(':memory:', HASHING);
  t.after(() => m.close());
  return m;
}

const triple = (r) => `${r.subject_name} ${r.predicate} ${r.object_name}`;

test('memory.graph is one object with the graph methods', async (t) => {
  const m = await open(t);
  assert.equal(m.graph, m.graph);
  const Graph = m.graph.constructor;
  assert.throws(() => new Graph(), { name: 'TypeError', message: /memory\.graph/ });
});

test('addEntity: a name and its aliases are one entity within a scope', async (t) => {
  const g = (await open(t)).graph;
  const alice = await g.addEntity('Alice Smith', {
    type: 'Person',
    aliases: ['Alice'],
    summary: 'a friend',
    userId: 'alice',
  });
  assert.equal(alice.name, 'Alice Smith');
  assert.equal(alice.type, 'person');
  assert.deepEqual(alice.aliases, ['Alice']);
  assert.equal(alice.summary, 'a friend');
  assert.equal(alice.user_id, 'alice');
  assert.equal(alice.agent_id, undefined);
  for (const name of ['alice', '  ALICE   smith ', 'Alice']) {
    assert.equal((await g.addEntity(name, { userId: 'alice' })).id, alice.id, name);
  }
  // An alias given later is learnt.
  const again = await g.addEntity('alice', { aliases: ['Al'], userId: 'alice' });
  assert.equal(again.id, alice.id);
  assert.deepEqual([...again.aliases].sort(), ['Al', 'Alice']);
  assert.equal((await g.addEntity('al', { userId: 'alice' })).id, alice.id);

  const zoe = await g.addEntity('Zoë', { aliases: ['Zoe Martin'], userId: 'alice' });
  assert.equal((await g.addEntity('zoe martin', { userId: 'alice' })).id, zoe.id);
  // Names of two entities cannot make one.
  await assert.rejects(g.addEntity('Alice', { aliases: ['Zoë'], userId: 'alice' }), InvalidInputError);

  const found = await g.entities('ali', { userId: 'alice' });
  assert.deepEqual(found.map((e) => e.id), [alice.id]);
  assert.equal((await g.entities('', { userId: 'alice' })).length, 2);
  assert.equal((await g.entities('', { userId: 'alice', type: 'person' })).length, 1);
  assert.equal((await g.entities('', { userId: 'alice', limit: 1 })).length, 1);

  const detail = await g.entity(alice.id);
  assert.equal(detail.entity.id, alice.id);
  assert.deepEqual(detail.relations, []);
});

test('addRelation: a functional predicate closes the old relation, which stays readable', async (t) => {
  const g = (await open(t)).graph;
  const scope = { userId: 'alice' };
  const moved = new Date(Date.now() - 30 * DAY);
  const paris = await g.addRelation('Alice', 'lives in', 'Paris', {
    ...scope,
    validFrom: new Date(moved.getTime() - 300 * DAY),
  });
  assert.equal(paris.created, true);
  assert.deepEqual(paris.closed, []);
  assert.equal(paris.relation.predicate, 'lives_in');
  assert.equal(paris.relation.literal, false);
  assert.equal(paris.relation.confidence, 1);
  assert.equal(paris.relation.user_id, 'alice');
  assert.equal(paris.relation.valid_to, undefined);

  const berlin = await g.addRelation({ name: 'alice' }, 'livesIn', { name: 'Berlin', type: 'place' }, {
    ...scope,
    validFrom: moved,
  });
  assert.equal(berlin.relation.subject, paris.relation.subject, 'the same Alice');
  assert.deepEqual(berlin.closed, [paris.relation.id]);

  // Now: Berlin only; include_closed: both; valid time before the move: Paris.
  assert.deepEqual((await g.relations(scope)).map(triple), ['Alice lives_in Berlin']);
  const every = await g.relations({ ...scope, includeClosed: true });
  assert.deepEqual(every.map(triple).sort(), ['Alice lives_in Berlin', 'Alice lives_in Paris']);
  const closed = every.find((r) => r.id === paris.relation.id);
  assert.equal(closed.closed_by, berlin.relation.id);
  assert.equal(Date.parse(closed.valid_to), moved.getTime(), 'closed when Berlin began');
  const before = await g.relations({ ...scope, validAt: new Date(moved.getTime() - DAY) });
  assert.deepEqual(before.map(triple), ['Alice lives_in Paris']);

  // The entity shows every relation, ended ones included.
  const detail = await g.entity(berlin.relation.subject);
  assert.deepEqual(detail.relations.map((r) => r.id).sort(), [paris.relation.id, berlin.relation.id].sort());
  const berlinEntity = (await g.entity(berlin.relation.object)).entity;
  assert.equal(berlinEntity.type, 'place');

  // A predicate that is not functional keeps both objects; the same relation again adds nothing.
  await g.addRelation('Alice', 'likes', 'tea', scope);
  const coffee = await g.addRelation('Alice', 'likes', 'coffee', { ...scope, confidence: 0.5 });
  assert.deepEqual(coffee.closed, []);
  assert.equal(coffee.relation.confidence, 0.5);
  const same = await g.addRelation('ALICE', 'Likes', 'Coffee', scope);
  assert.equal(same.created, false);
  assert.equal(same.relation.id, coffee.relation.id);
  assert.equal((await g.relations({ ...scope, predicate: 'likes' })).length, 2);
  assert.equal((await g.relations({ ...scope, entity: berlin.relation.object })).length, 1);
  assert.equal((await g.relations({ ...scope, limit: 1 })).length, 1);
});

test('addRelation: literal values, entities by id, and the memories a relation came from', async (t) => {
  const m = await open(t);
  const g = m.graph;
  const scope = { userId: 'carol' };
  const { id: memoryId } = await m.add('Carol is allergic to peanuts', scope);
  const allergy = await g.addRelation('Carol', 'allergic_to', { value: 'peanuts' }, {
    ...scope,
    sources: [memoryId],
  });
  assert.equal(allergy.relation.literal, true);
  assert.equal(allergy.relation.object, undefined);
  assert.equal(allergy.relation.object_name, 'peanuts');
  assert.deepEqual(allergy.relation.sources, [memoryId]);
  const carol = allergy.relation.subject;
  const dan = await g.addEntity('Dan', scope);
  const works = await g.addRelation({ id: carol }, 'works with', { id: dan.id }, scope);
  assert.equal(triple(works.relation), 'Carol works_with Dan');

  assert.deepEqual((await g.relations({ ...scope, source: memoryId })).map(triple), ['Carol allergic_to peanuts']);
  // Deleting the only memory a relation came from removes it.
  await m.delete(memoryId);
  assert.deepEqual((await g.relations(scope)).map(triple), ['Carol works_with Dan']);
});

test('neighbors: entities up to depth 2, by direction and predicate; path: the shortest chain', async (t) => {
  const g = (await open(t)).graph;
  const scope = { userId: 'u' };
  const knows = await g.addRelation('Alice', 'knows', 'Bob', scope);
  const works = await g.addRelation('Bob', 'works_at', 'Acme', scope);
  await g.addRelation('Acme', 'located_in', 'Oslo', scope);
  const alice = knows.relation.subject;
  const bob = knows.relation.object;
  const acme = works.relation.object;

  const near = (list) => list.map((n) => `${n.entity.name}:${n.depth}`).sort();
  assert.deepEqual(near(await g.neighbors(alice)), ['Bob:1']);
  const two = await g.neighbors(alice, { depth: 2 });
  assert.deepEqual(near(two), ['Acme:2', 'Bob:1']);
  assert.equal(two.find((n) => n.entity.id === acme).via.id, works.relation.id);
  assert.deepEqual(near(await g.neighbors(acme, { depth: 2, direction: 'in' })), ['Alice:2', 'Bob:1']);
  assert.deepEqual(near(await g.neighbors(acme, { direction: 'out' })), ['Oslo:1']);
  assert.deepEqual(near(await g.neighbors(bob, { depth: 3, predicates: ['knows'] })), ['Alice:1']);

  const path = await g.path(alice, acme);
  assert.deepEqual(path.map(triple), ['Alice knows Bob', 'Bob works_at Acme']);
  // Relations are followed either way.
  assert.deepEqual((await g.path(acme, alice)).map((r) => r.id), [works.relation.id, knows.relation.id]);
  assert.deepEqual(await g.path(alice, alice), []);
  assert.equal(await g.path(alice, acme, { maxDepth: 1 }), null);
});

test('bad input: InvalidInputError or NotFoundError from the core, TypeError before it', async (t) => {
  const g = (await open(t)).graph;
  const { relation } = await g.addRelation('Eve', 'works at', 'Acme', { userId: 'eve' });
  const eve = relation.subject;

  await assert.rejects(g.neighbors(eve, { depth: 9 }), (e) => {
    assert.ok(e instanceof InvalidInputError);
    assert.equal(e.code, 'AM_INVALID_INPUT');
    assert.match(e.message, /depth/);
    return true;
  });
  await assert.rejects(g.path(eve, eve, { maxDepth: 0 }), InvalidInputError);
  await assert.rejects(g.addRelation('Eve', '->', 'Acme'), InvalidInputError);
  await assert.rejects(g.addRelation('Eve', 'knows', 'Acme', { confidence: 1.5 }), InvalidInputError);
  await assert.rejects(g.addEntity('  '), InvalidInputError);
  await assert.rejects(g.relations({ validAt: 'not a time' }), { name: 'InvalidInputError', message: /valid_at/ });
  await assert.rejects(g.neighbors(eve, { direction: 'sideways' }), InvalidInputError);
  // A misspelt option is refused by the core, by name.
  await assert.rejects(g.neighbors(eve, { deph: 2 }), { name: 'InvalidInputError', message: /deph/ });
  await assert.rejects(g.entity('nobody'), NotFoundError);
  await assert.rejects(g.neighbors('nobody'), NotFoundError);
  await assert.rejects(g.addRelation('Eve', 'knows', { id: 'nobody' }), NotFoundError);

  const typeError = { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' };
  const valueError = { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' };
  await assert.rejects(g.addEntity(5), typeError);
  await assert.rejects(g.addEntity('x', { aliases: 'Al' }), typeError);
  await assert.rejects(g.addEntity('x', { aliases: ['Al', 3] }), typeError);
  await assert.rejects(g.addEntity('x', { name: 'y' }), valueError);
  await assert.rejects(g.addRelation('Eve', 'knows'), typeError);
  await assert.rejects(g.addRelation(null, 'knows', 'Bob'), typeError);
  await assert.rejects(g.addRelation('Eve', 3, 'Bob'), typeError);
  // An end is a name, {name, type?} or {id}; an object may also be {value}: nothing else.
  await assert.rejects(g.addRelation({ value: 'x' }, 'knows', 'Bob'), valueError);
  await assert.rejects(g.addRelation('Eve', 'knows', { id: eve, name: 'Eve' }), valueError);
  await assert.rejects(g.addRelation('Eve', 'knows', { name: 'Bob', colour: 'red' }), valueError);
  await assert.rejects(g.addRelation('Eve', 'knows', {}), valueError);
  await assert.rejects(g.addRelation('Eve', 'knows', 'Bob', { value: 'x' }), valueError);
  await assert.rejects(g.addRelation('Eve', 'knows', 'Bob', { sources: 'm1' }), typeError);
  await assert.rejects(g.neighbors(eve, { depth: NaN }), typeError);
  await assert.rejects(g.path(eve), typeError);
  await assert.rejects(g.entities(), typeError);
  await assert.rejects(g.relations('eve'), typeError);

  // Nothing of the refused calls stayed.
  assert.deepEqual((await g.relations({ userId: 'eve' })).map(triple), ['Eve works_at Acme']);
  assert.deepEqual(await g.relations(), []);
  assert.deepEqual(await g.entities(''), []);
});

test('scopes are never crossed: the same names are other entities, walks stay in their scope', async (t) => {
  const g = (await open(t)).graph;
  const one = await g.addRelation('Alice', 'knows', 'Bob', { userId: 'u1' });
  const two = await g.addRelation('Alice', 'knows', 'Carol', { userId: 'u2' });
  const shared = await g.addRelation('Alice', 'knows', 'Dan', { userId: 'u1', agentId: 'a' });
  assert.notEqual(one.relation.subject, two.relation.subject);
  assert.notEqual(one.relation.subject, shared.relation.subject, 'a scope is exact');

  const names = async (userId, agentId) =>
    (await g.entities('', { userId, agentId })).map((e) => e.name).sort();
  assert.deepEqual(await names('u1'), ['Alice', 'Bob']);
  assert.deepEqual(await names('u2'), ['Alice', 'Carol']);
  assert.deepEqual(await names('u1', 'a'), ['Alice', 'Dan']);
  assert.deepEqual((await g.relations({ userId: 'u2' })).map(triple), ['Alice knows Carol']);
  assert.deepEqual(await g.relations(), [], 'the global layer has none');

  const around = await g.neighbors(one.relation.subject, { depth: 3 });
  assert.deepEqual(around.map((n) => n.entity.name), ['Bob']);
  assert.equal(around[0].entity.user_id, 'u1');
  assert.equal(await g.path(one.relation.subject, two.relation.object), null);
  // An entity of another scope cannot be an end of a relation.
  await assert.rejects(
    g.addRelation({ id: one.relation.subject }, 'knows', { id: two.relation.object }, { userId: 'u1' }),
    InvalidInputError,
  );
});

test('corrections: merge, rename and split, each recorded in the entity history', async (t) => {
  const m = await open(t);
  const bob = await m.graph.addEntity('Bob', { type: 'person', userId: 'u' });
  const robert = await m.graph.addEntity('Robert', { type: 'person', userId: 'u' });
  await m.graph.addRelation('Robert', 'plays', 'chess', { userId: 'u' });
  const merged = await m.graph.mergeEntities(bob.id, robert.id);
  assert.deepEqual(merged.entity.aliases, ['Robert']);
  assert.deepEqual(merged.relations.map(triple), ['Bob plays chess']);
  await assert.rejects(m.graph.entity(robert.id), (e) => e instanceof NotFoundError && /merged into/.test(e.message));
  const renamed = await m.graph.renameEntity(bob.id, 'Bobby');
  assert.deepEqual(renamed.aliases, ['Bob', 'Robert']);
  const split = await m.graph.splitEntity(bob.id, 'Robert', {
    aliases: ['Robert'],
    relations: [merged.relations[0].id],
  });
  assert.deepEqual(split.split_off.relations.map(triple), ['Robert plays chess']);
  assert.deepEqual(split.entity.entity.aliases, ['Bob']);
  const events = (await m.graph.entityHistory(bob.id)).map((e) => e.event);
  assert.deepEqual(events, ['merged', 'renamed', 'split']);
  await assert.rejects(m.graph.renameEntity(bob.id, 'robert'), InvalidInputError);
  await assert.rejects(m.graph.splitEntity(bob.id, 'X', { relations: 'r' }), TypeError);
});

test('add: a memory with its entities and relations, all or nothing', async (t) => {
  const m = await open(t);
  const added = await m.add('Alice (Ally) lives in Paris since 2024', {
    userId: 'a',
    entities: [{ name: 'Alice', type: 'person', aliases: ['Ally'] }, 'Paris'],
    relations: [
      { subject: 'Ally', predicate: 'lives in', object: 'Paris', validFrom: new Date('2024-01-01T00:00:00Z') },
      { subject: { name: 'Alice' }, predicate: 'age', value: '30' },
    ],
  });
  const relations = await m.graph.relations({ userId: 'a' });
  assert.deepEqual(relations.map(triple), ['Alice lives_in Paris', 'Alice age 30']);
  assert.ok(relations.every((r) => r.sources.length === 1 && r.sources[0] === added.id));
  const before = [await m.count(), (await m.graph.entities('', { userId: 'a' })).length];
  await assert.rejects(
    m.add('Alice knows someone', {
      userId: 'a',
      relations: [
        { subject: 'Alice', predicate: 'knows', object: 'Zed' },
        { subject: 'Alice', predicate: 'knows', object: { id: 'no-such-entity' } },
      ],
    }),
    NotFoundError,
  );
  await assert.rejects(
    m.add('x', { userId: 'a', relations: [{ subject: 'Alice', predicate: '?', value: 'v' }] }),
    InvalidInputError,
  );
  assert.deepEqual([await m.count(), (await m.graph.entities('', { userId: 'a' })).length], before);
  const batch = await m.addBatch([
    { content: 'Bob likes jazz', userId: 'b', relations: [{ subject: 'Bob', predicate: 'likes', value: 'jazz' }] },
  ]);
  assert.deepEqual((await m.graph.relations({ userId: 'b' }))[0].sources, [batch[0].id]);
});

test('importTriples and export: all or nothing, and JSON imports back', async (t) => {
  const g = (await open(t)).graph;
  const report = await g.importTriples(
    [
      { subject: 'Ann', subjectType: 'person', predicate: 'lives_in', object: 'Oslo', validFrom: '2020-01-01' },
      { subject: 'Ann', predicate: 'lives_in', object: 'Rome', validFrom: new Date('2023-01-01T00:00:00Z') },
      { subject: { name: 'Ann' }, predicate: 'motto', value: 'say "hi"\nnow' },
    ],
    { userId: 'u', entities: [{ name: 'Ann', aliases: ['Annie'] }] },
  );
  assert.equal(report.relations_created, 3);
  assert.equal(report.entities_created, 3);
  assert.equal(report.closed.length, 1);
  await assert.rejects(
    g.importTriples([{ subject: 'X', predicate: 'p', value: 'v' }, { subject: 'X', predicate: '!', value: 'v' }], {
      userId: 'u',
    }),
    /triples\[1\]/,
  );
  assert.equal((await g.entities('x', { userId: 'u' })).length, 0);
  const doc = await g.export('json', { userId: 'u', includeClosed: true });
  assert.equal(doc.format, 'json');
  assert.deepEqual(
    doc.content.entities.map((e) => e.name),
    ['Ann', 'Oslo', 'Rome'],
  );
  const again = await g.importTriples(doc.content.triples, { entities: doc.content.entities, agentId: 'copy' });
  assert.equal(again.relations_created, 3);
  assert.deepEqual(await g.export(undefined, { agentId: 'copy', includeClosed: true }), doc);
  const dot = await g.export('dot', { userId: 'u' });
  assert.ok(dot.content.includes('[label="say \\"hi\\"\\nnow", shape=note];'), dot.content);
  const graphml = await g.export('graphml', { userId: 'u' });
  assert.ok(graphml.content.startsWith('<?xml'));
  assert.ok(graphml.content.includes('<data key="name">say &quot;hi&quot;\nnow</data>'));
  await assert.rejects(g.export('svg'), InvalidInputError);
});

test('asOf: the graph as recorded at a past moment', async (t) => {
  const m = await open(t);
  const { id: said } = await m.add('Ann lives in Oslo', { userId: 'u' });
  const oslo = await m.graph.addRelation('Ann', 'lives in', 'Oslo', { userId: 'u', sources: [said] });
  const then = oslo.relation.created_at;
  await m.graph.addRelation('Ann', 'lives in', 'Rome', { userId: 'u' });
  await m.delete(said);
  assert.deepEqual((await m.graph.relations({ userId: 'u' })).map(triple), ['Ann lives_in Rome']);
  assert.deepEqual((await m.graph.relations({ userId: 'u', asOf: then })).map(triple), ['Ann lives_in Oslo']);
  const around = await m.graph.neighbors(oslo.relation.subject, { asOf: then });
  assert.deepEqual(around.map((n) => n.entity.name), ['Oslo']);
});
