"""One running ``StreamingRecognize`` call: audio in, results out, as two cooperating tasks.

The feeder reads messages, checks and converts audio, and feeds the recognizer; the pump forwards
the recognizer's results. Both report into one outbox, so whichever fails first ends the call with
its error at once, while a normal end of input lets the pump deliver the last final first. Two
endings finalise first and then fail: too much audio (ERR1006) and input cut by a drain (ERR1026,
with ``stt-drain-truncated-at-sec``), so the client keeps what was heard and knows where to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Final

from stt_server.capture.storage import CaptureWriter
from stt_server.engine.types import RecognitionResult, SpeechEvent
from stt_server.errors import ErrorCode, SttError
from stt_server.grpc_service.audio_input import StreamAudioDecoder
from stt_server.grpc_service.inbox import Inbox
from stt_server.grpc_service.wire import MalformedMessage
from stt_server.metrics import DecodeTiming, ServerMetrics
from stt_server.proto_gen import stt_pb2

log = logging.getLogger(__name__)
_DONE: Final = object()
DRAIN_TRUNCATED_KEY: Final = "stt-drain-truncated-at-sec"


class StreamRun:
    """Drives one recognizer from one inbox; ``items`` yields what the client should receive."""

    def __init__(
        self,
        *,
        inbox: Inbox[stt_pb2.StreamingRecognizeRequest | MalformedMessage],
        recognizer: Any,
        decoder: StreamAudioDecoder,
        capture: CaptureWriter | None,
        max_message_bytes: int,
        metrics: ServerMetrics,
    ) -> None:
        self._inbox = inbox
        self._metrics = metrics
        self._recognizer = recognizer
        self._decoder = decoder
        self._capture = capture
        self._max_message_bytes = max_message_bytes
        self._outbox: asyncio.Queue[object] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._drained = False
        # an error to raise after the final of what was heard (ERR1006)
        self._after_final: SttError | None = None

    @property
    def timing_totals(self) -> DecodeTiming | None:
        return getattr(self._recognizer, "timing_totals", None)

    @property
    def decode_count(self) -> int:
        return int(getattr(self._recognizer, "decode_count", 0))

    async def items(self) -> AsyncIterator[RecognitionResult | SpeechEvent]:
        """Results and events until the recognizer is done; raises the first error."""
        self._tasks = [
            asyncio.create_task(self._feed(), name="stt-stream-feed"),
            asyncio.create_task(self._pump(), name="stt-stream-pump"),
        ]
        while True:
            item = await self._outbox.get()
            if item is _DONE:
                if self._after_final is not None:
                    raise self._after_final
                if self._drained and not self._inbox.ended:
                    at_sec = f"{self._decoder.received_sec:.3f}"
                    raise SttError(ErrorCode.DRAIN_TRUNCATED, at_sec=at_sec).with_metadata(
                        (DRAIN_TRUNCATED_KEY, at_sec))
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    async def _feed(self) -> None:
        index = 1
        try:
            while (request := await self._inbox.next()) is not None:
                index += 1
                if isinstance(request, MalformedMessage):
                    log.warning("malformed StreamingRecognize message %d: %d bytes are not a valid %s",
                                index, request.nbytes, request.type_name)
                    raise SttError(ErrorCode.MALFORMED_MESSAGE, what=f"StreamingRecognize message {index}",
                                   type_name=request.type_name, nbytes=request.nbytes)
                which = request.WhichOneof("streaming_request")
                if which != "audio_content":
                    raise SttError(ErrorCode.UNEXPECTED_MESSAGE, index=index, got=which or "nothing")
                size = len(request.audio_content)
                if size > self._max_message_bytes:
                    raise SttError(ErrorCode.MESSAGE_TOO_LARGE, nbytes=size, limit=self._max_message_bytes)
                try:
                    pcm = self._decode(request.audio_content)
                except SttError as exc:
                    if exc.code is not ErrorCode.STREAM_TOO_LONG:
                        raise
                    self._after_final = exc  # finalise what was heard, then end with ERR1006
                    break
                await self._feed_pcm(pcm)
            await self._feed_pcm(self._decoder.flush())
            if self._decoder.received_sec == 0.0:
                raise SttError(ErrorCode.EMPTY_STREAM, what="StreamingRecognize call")
            await self._recognizer.finish()
        except asyncio.CancelledError:
            raise
        except SttError as exc:
            self._outbox.put_nowait(exc)
        except Exception as exc:
            log.exception("feeding the recognizer failed")
            self._outbox.put_nowait(SttError(ErrorCode.MODEL_ERROR, reason=type(exc).__name__))

    def _decode(self, data: bytes) -> Any:
        """One audio message to 16 kHz PCM, counted and timed (seed 003/004 names)."""
        started = time.perf_counter()
        pcm = self._decoder.decode(data)
        self._metrics.audio_load_seconds.labels(kind="stream").observe(time.perf_counter() - started)
        self._metrics.audio_chunks.inc()
        return pcm

    async def _feed_pcm(self, pcm: Any) -> None:
        if pcm.size == 0:
            return
        if self._capture is not None:
            self._capture.write(pcm)
        await self._recognizer.feed(pcm)

    async def _pump(self) -> None:
        try:
            async for item in self._recognizer.events():
                self._outbox.put_nowait(item)
            self._outbox.put_nowait(_DONE)
        except asyncio.CancelledError:
            raise
        except SttError as exc:
            self._outbox.put_nowait(exc)
        except Exception as exc:
            log.exception("recognizer failed")
            self._outbox.put_nowait(SttError(ErrorCode.MODEL_ERROR, reason=type(exc).__name__))

    def stop_input(self) -> None:
        """Drain: treat the input as ended, so the open utterance gets its final (then ERR1026)."""
        self._drained = True
        self._inbox.stop()

    async def close(self) -> None:
        """Cancel both tasks, close the recognizer and the capture (idempotent; the inbox is the caller's)."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self._recognizer.close()
        finally:
            if self._capture is not None:
                self._capture.close()


class SingleUtteranceTracker:
    """With ``single_utterance``, the call is over once END_OF_SINGLE_UTTERANCE and a final were sent."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._ended = self._final = False

    def saw(self, item: RecognitionResult | SpeechEvent) -> bool:
        if isinstance(item, SpeechEvent):
            self._ended |= item.kind == "end_of_single_utterance"
        else:
            self._final |= item.is_final
        return self._enabled and self._ended and self._final
