"""A stream's incoming messages, read by a background task so waits can time out and be interrupted.

Waiting on the request iterator directly cannot enforce the idle timeout without cancelling a gRPC
read mid-way; reading into a small queue lets the consumer wait with a timeout, and lets a drain
end the input early (``stop``) so the stream finalises instead of being cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final, Generic, TypeVar

from stt_server.errors import ErrorCode, SttError

log = logging.getLogger(__name__)
T = TypeVar("T")
_END: Final = object()
_STOP: Final = object()  # a wake-up from stop(), not the client's half-close
_QUEUE_DEPTH: Final = 8  # bounded, so a fast client is slowed by gRPC flow control rather than memory


class Inbox(Generic[T]):
    """Messages of one call in order; ``next`` returns ``None`` once the input ended or was stopped."""

    def __init__(self, requests: AsyncIterator[T], *, idle_timeout_sec: float) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=_QUEUE_DEPTH)
        self._idle_timeout_sec = idle_timeout_sec
        self._stopped = False
        self.ended = False  # the client half-closed (or the call broke) and we saw it
        self._reader = asyncio.create_task(self._read(requests), name="stt-inbox-reader")

    async def _read(self, requests: AsyncIterator[T]) -> None:
        try:
            async for request in requests:
                await self._queue.put(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the call broke (client gone): to the consumer that is end of input
            log.debug("request stream ended with %s", type(exc).__name__)
        await self._queue.put(_END)

    async def next(self) -> T | None:
        """The next message; ``None`` at end of input; ERR1017 after the idle timeout."""
        if self._stopped:
            return None
        try:
            async with asyncio.timeout(self._idle_timeout_sec):
                item = await self._queue.get()
        except TimeoutError:
            raise SttError(ErrorCode.IDLE_TIMEOUT, limit=f"{self._idle_timeout_sec:g}") from None
        if item is _END or item is _STOP or self._stopped:
            self.ended = self.ended or item is _END
            self._stopped = True
            return None
        return item  # type: ignore[return-value]

    async def drain(self, timeout: float) -> bool:
        """Discard messages until the client half-closes or ``timeout`` passes; True if it closed.

        Ending a call while the client is still writing races with that write in grpc.aio clients
        (grpc/grpc#36066: the client may report INTERNAL instead of our status), so before sending
        an error the servicer gives a client that is about to finish a moment to do so.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    item = await self._queue.get()
            except TimeoutError:
                return False
            if item is _END:
                self.ended = True
                return True
        return False

    def stop(self) -> None:
        """End the input early (drain): the consumer's next ``next`` returns ``None``."""
        self._stopped = True
        # wake a consumer blocked in next(); a full queue means it is not blocked
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_STOP)

    async def close(self) -> None:
        """Stop reading and wait for the reader task to end."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
