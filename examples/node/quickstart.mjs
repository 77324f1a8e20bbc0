// Quickstart: a store file, memories for two users, and a search for each.
//
// In a project with the package installed (`npm install <repo>/node`):
//   node quickstart.mjs [path/to/store.db]

import { Memory } from 'agent_mem';

const path = process.argv[2] ?? 'quickstart.db';
const memory = await Memory.open(path);
console.log(`store: ${path} (model: ${memory.embeddingModel ?? 'none'})`);

const facts = [
  ['alice', 'Alice is allergic to peanuts'],
  ['alice', 'Alice moved from Paris to Berlin in March 2024'],
  ['alice', 'Alice prefers dark mode in every editor'],
  ['alice', '我喜欢喝咖啡，特别是拿铁'],
  ['bob', 'Bob is training for the Chicago marathon'],
  ['bob', "Bob's favourite food is spicy ramen"],
  ['bob', 'Bob works as a site reliability engineer in San Francisco'],
];
const added = await memory.addBatch(facts.map(([userId, content]) => ({ content, userId })));
const fresh = added.filter((a) => a.added).length;
console.log(`added ${fresh} new memories (${added.length - fresh} already stored)`);

const questions = [
  ['alice', 'What food should Alice avoid?'],
  ['alice', 'where does she live now'],
  ['alice', '咖啡'],
  ['bob', 'what does bob do for a living'],
  ['bob', 'San Fransisco'],
];
for (const [userId, question] of questions) {
  console.log(`\n[${userId}] ${question}`);
  for (const hit of await memory.search(question, { userId, limit: 3 })) {
    console.log(`  ${hit.score.toFixed(3)}  (cosine ${(hit.similarity ?? 0).toFixed(3)})  ${hit.content}`);
  }
}
await memory.close();
