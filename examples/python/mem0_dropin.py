"""mem0's README example on agent_mem: the mem0 code is unchanged but for its import line.

mem0's README answers with OpenAI; here a stand-in `openai_client` answers instead, so that the
example runs with no API key and no network. agent_mem itself needs neither: it embeds
locally. Without an LLM, `add` stores the conversation's messages as given (and says so with a
Mem0CompatWarning) instead of extracting facts; search and the rest behave as in mem0.

    python examples/python/mem0_dropin.py   # the store: $AGENTMEM_MEM0_DIR/mem0.db
"""

from types import SimpleNamespace
from typing import Any

from agent_mem.mem0 import Memory  # was: from mem0 import Memory


class _StandInChat:
    """Answers like `OpenAI().chat.completions`, from the memories in the system prompt."""

    def create(self, model: str, messages: list[dict[str, str]]) -> Any:
        remembered = [line[2:] for line in messages[0]["content"].splitlines() if line[:2] == "- "]
        answer = f"You told me: {remembered[0]} How about a vegetable curry?"
        choice = SimpleNamespace(message=SimpleNamespace(content=answer))
        return SimpleNamespace(choices=[choice])


openai_client = SimpleNamespace(chat=SimpleNamespace(completions=_StandInChat()))

# ---- from here on: mem0's README --------------------------------------------------------

memory = Memory()


def chat_with_memories(message: str, user_id: str = "default_user") -> str:
    # Retrieve relevant memories
    relevant_memories = memory.search(query=message, user_id=user_id, limit=3)
    memories_str = "\n".join(f"- {entry['memory']}" for entry in relevant_memories["results"])

    # Generate Assistant response
    system_prompt = (
        "You are a helpful AI. Answer the question based on query and memories.\n"
        f"User Memories:\n{memories_str}"
    )
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": message}]
    response = openai_client.chat.completions.create(
        model="gpt-4.1-nano-2025-04-14", messages=messages
    )
    assistant_response = response.choices[0].message.content

    # Create new memories from the conversation
    messages.append({"role": "assistant", "content": assistant_response})
    memory.add(messages, user_id=user_id)

    return assistant_response


def main() -> None:
    memory.delete_all(user_id="alice")
    memory.add("I'm a vegetarian and I'm allergic to nuts.", user_id="alice")
    memory.add(
        [
            {"role": "user", "content": "I love playing tennis on weekends."},
            {"role": "assistant", "content": "Tennis is great exercise!"},
        ],
        user_id="alice",
        metadata={"category": "hobbies"},
    )

    print("chat:", chat_with_memories("What should I cook for dinner?", user_id="alice"))

    results = memory.search("what does alice do at the weekend?", user_id="alice", limit=3)
    print("search:")
    for entry in results["results"]:
        print(f"  {entry['score']:.3f}  {entry['memory']}  {entry['metadata']}")

    all_memories = memory.get_all(user_id="alice")
    print(f"alice has {len(all_memories['results'])} memories")

    first = results["results"][0]
    memory.update(memory_id=first["id"], data="I love playing tennis on Sundays.")
    print(
        "history:", [(h["event"], h["new_memory"]) for h in memory.history(memory_id=first["id"])]
    )


if __name__ == "__main__":
    main()
