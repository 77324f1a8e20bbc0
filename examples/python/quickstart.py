"""Quickstart: a store file, memories for two users, a search for each question, and the
same with asyncio.

    pip install ./python && python -m agent_mem.model install
    python examples/python/quickstart.py [path/to/store.db]
"""

from __future__ import annotations

import asyncio
import sys

from agent_mem import AsyncMemory, Memory

FACTS = [
    ("alice", "Alice is allergic to peanuts"),
    ("alice", "Alice moved from Paris to Berlin in March 2024"),
    ("alice", "Alice prefers dark mode in every editor"),
    ("alice", "我喜欢喝咖啡，特别是拿铁"),
    ("bob", "Bob is training for the Chicago marathon"),
    ("bob", "Bob's favourite food is spicy ramen"),
    ("bob", "Bob works as a site reliability engineer in San Francisco"),
]

QUESTIONS = [
    ("alice", "What food should Alice avoid?"),
    ("alice", "where does she live now"),
    ("alice", "咖啡"),
    ("bob", "what does bob do for a living"),
    ("bob", "San Fransisco"),
]


def main(path: str) -> None:
    with Memory(path) as memory:
        print(f"store: {path} (model: {memory.embedding_model})")
        added = memory.add_batch([{"content": text, "user_id": user} for user, text in FACTS])
        fresh = sum(a["added"] for a in added)
        print(f"added {fresh} new memories ({len(added) - fresh} already stored)")
        for user, question in QUESTIONS:
            print(f"\n[{user}] {question}")
            for hit in memory.search(question, user_id=user, limit=3):
                cosine = hit.get("similarity", 0.0)
                print(f"  {hit['score']:.3f}  (cosine {cosine:.3f})  {hit['content']}")

    asyncio.run(ask_concurrently(path))


async def ask_concurrently(path: str) -> None:
    """Every question at once: each search runs on its own Rust worker thread."""
    async with await AsyncMemory.open(path) as memory:
        answers = await asyncio.gather(
            *(memory.search(question, user_id=user, limit=1) for user, question in QUESTIONS)
        )
        print("\nasync, all questions at once:")
        for (user, question), hits in zip(QUESTIONS, answers):
            print(f"  [{user}] {question} -> {hits[0]['content']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "quickstart.db")
