"""Driving a ``StreamRecognizer`` in engine tests: feed a whole clip, collect everything it emits."""

from __future__ import annotations

import asyncio
from typing import Any

import audio_fixtures as af
from stt_server.engine import RecognitionResult, SpeechEvent
from stt_server.engine.recognizer import StreamRecognizer


async def feed_all(stream: StreamRecognizer, audio: Any, *, timeout: float = 120.0
                   ) -> list[RecognitionResult | SpeechEvent]:
    """Feed 100 ms chunks with no pacing at all (the VAD hop to its thread is the only yield),
    finish, and return every result and speech event the stream emitted."""
    items: list[RecognitionResult | SpeechEvent] = []

    async def consume() -> None:
        async for item in stream.events():
            items.append(item)

    consumer = asyncio.create_task(consume())
    for chunk in af.chunks(audio):
        await stream.feed(chunk)
    await stream.finish()
    await asyncio.wait_for(consumer, timeout=timeout)
    return items
