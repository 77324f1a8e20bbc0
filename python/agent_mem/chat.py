"""The streams of :meth:`Memory.chat_stream <agent_mem.Memory.chat_stream>` and
:meth:`AsyncMemory.chat_stream <agent_mem.AsyncMemory.chat_stream>`.

The chat runs in the Rust core on a thread of its own from the moment the stream is made;
each piece of the answer's text is handed over as the model writes it::

    with memory.chat_stream("What should I cook tonight?", user_id="alice") as stream:
        for piece in stream:
            print(piece, end="", flush=True)
    reply = stream.result  # the ChatReply: citations, memories used, what was remembered

    async for piece in async_memory.chat_stream("And for dessert?", user_id="alice"):
        ...

Closing a stream before its end (``close()``, leaving its ``with`` block, ``aclose()``,
cancelling the task that awaits it, or dropping it) stops the model's answer at its next
piece: the call then ends with :class:`~agent_mem.CancelledError` and nothing of the turn is
stored. ``close()`` waits for the call to stop, so that no thread is left running.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, cast

from . import _native

if TYPE_CHECKING:
    from .memory import ChatReply

__all__ = ["AsyncChatStream", "ChatStream"]


class ChatStream:
    """The answer of :meth:`Memory.chat_stream <agent_mem.Memory.chat_stream>` as it is
    written: iterate it for the pieces of text (``str``; they join to
    ``result["answer"]``), then read :attr:`result`.

    Waiting for a piece releases the GIL. The call's errors (``LlmError`` when the model
    fails or its stream is cut, ``InvalidInputError``, ``UnsupportedError``…) are raised by
    the iteration. Ctrl-C while waiting cancels the call. Use it as a context manager, or
    call :meth:`close`, to stop a stream you do not read to its end.
    """

    __slots__ = ("_native",)

    def __init__(self, native: _native.NativeStream) -> None:
        self._native = native

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        return next(self._native)

    @property
    def result(self) -> ChatReply:
        """The reply once the stream has ended (the same as :meth:`Memory.chat
        <agent_mem.Memory.chat>` returns). Raises the call's error if it failed
        (``CancelledError`` after :meth:`close`), and ``InvalidInputError`` while the stream
        has not ended."""
        return cast("ChatReply", self._native.result)

    @property
    def done(self) -> bool:
        """Whether the stream has ended: its result (or its error) is known."""
        return self._native.done

    def close(self) -> None:
        """Stops the answer at its next piece and waits for the call to end (with the GIL
        released); the pieces not read are dropped. Nothing of the turn is stored unless the
        model had already answered in full. Idempotent."""
        self._native.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<agent_mem.ChatStream ({'ended' if self.done else 'running'})>"


class AsyncChatStream:
    """The answer of :meth:`AsyncMemory.chat_stream <agent_mem.AsyncMemory.chat_stream>`
    as it is written: ``async for`` it for the pieces of text, then read :attr:`result`.

    Each piece is awaited on a Rust worker thread: the event loop keeps running. Cancelling
    the task that awaits a piece cancels the call. Use ``async with``, or ``await
    aclose()``, to stop a stream you do not read to its end (a stream dropped unread is
    cancelled too, but its collection then waits for the call to stop).
    """

    __slots__ = ("_native",)

    def __init__(self, native: _native.NativeStream) -> None:
        self._native = native

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> str:
        if self._native.done:
            raise StopAsyncIteration
        try:
            piece = await self._native.next_async()
        except asyncio.CancelledError:
            self._native.cancel()
            raise
        if piece is None:
            raise StopAsyncIteration
        return piece

    @property
    def result(self) -> ChatReply:
        """The reply once the stream has ended; see :attr:`ChatStream.result`."""
        return cast("ChatReply", self._native.result)

    @property
    def done(self) -> bool:
        """Whether the stream has ended: its result (or its error) is known."""
        return self._native.done

    async def aclose(self) -> None:
        """Stops the answer at its next piece and waits, on a worker thread, for the call to
        end; the pieces not read are dropped. Idempotent."""
        self._native.cancel()
        await self._native.close_async()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<agent_mem.AsyncChatStream ({'ended' if self.done else 'running'})>"
