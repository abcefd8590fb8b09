"""OpenAI's realtime transcription WebSocket (``/v1/realtime?intent=transcription``): the event
translation (pure), protocol errors on a fake engine, and real speech on tiny.en."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import numpy as np
import pytest
from audio_fixtures import silence, synthesize
from audio_fixtures import word_error_rate as wer
from grpc_harness import assert_no_leaks, make_config
from prometheus_client import CollectorRegistry
from rest_harness import RestServer, rest_server
from stt_server.engine.backend import WhisperBackend
from stt_server.engine.engine import Engine
from stt_server.engine.types import RecognitionResult, SpeechEvent
from stt_server.metrics import ServerMetrics
from stt_server.rest.realtime_events import RealtimeTranscript

KEY = "rt-key"


def _result(text: str, *, final: bool, index: int = 0) -> RecognitionResult:
    return RecognitionResult(is_final=final, stable_text=text, unstable_text="", start_sec=0, end_sec=1,
                             audio_processed_sec=1, utterance_index=index)


def test_deltas_only_append_and_completed_carries_the_whole_text() -> None:
    t = RealtimeTranscript()
    events = [e for item in (SpeechEvent("speech_begin", 0.5), _result("The quick", final=False),
                             _result("The quick", final=False), _result("The quick brown", final=False),
                             SpeechEvent("speech_end", 2.0), _result("The quick brown fox.", final=True),
                             SpeechEvent("speech_begin", 3.0))
              for e in t.events(item)]
    assert [e["type"] for e in events] == [
        "input_audio_buffer.speech_started", "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta", "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed", "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed", "input_audio_buffer.speech_started"]
    deltas = [e["delta"] for e in events if e["type"].endswith(".delta")]
    assert deltas == ["The quick", " brown", " fox."]
    assert events[6]["transcript"] == "The quick brown fox." and events[6]["item_id"] == "item_0000"
    assert events[0]["audio_start_ms"] == 500 and events[-1]["item_id"] == "item_0001"
    t.next_stream()  # a commit: the next recognizer counts from 0, the ids go on
    assert t.events(SpeechEvent("speech_begin", 0.1))[0]["item_id"] == "item_0002"


async def _open(api: RestServer, http: aiohttp.ClientSession, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(f"{api.base_url}/v1/realtime?intent=transcription", **kwargs)


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 60) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            event = await ws.receive_json()
            if event["type"] == kind:
                return event


def _b64_pcm24k(samples_16k: np.ndarray) -> str:
    # upsampled for the test as a client would; the server resamples 24 kHz back to 16 kHz
    t_src = np.arange(samples_16k.size) / 16_000
    t_dst = np.arange(int(samples_16k.size * 1.5)) / 24_000
    pcm = (np.clip(np.interp(t_dst, t_src, samples_16k), -1, 1) * 32767).astype("<i2").tobytes()
    return base64.b64encode(pcm).decode()


async def test_protocol_errors_keep_the_connection_and_auth_is_checked_before_the_upgrade() -> None:
    async with rest_server({"auth": {"api_keys": [KEY]}}) as api, aiohttp.ClientSession() as http:
        async with http.get(f"{api.base_url}/v1/realtime?intent=transcription") as reply:
            assert reply.status == 401 and (await reply.json())["error"]["code"] == "ERR1018"
        # a browser cannot set headers: the key rides as a subprotocol
        ws = await _open(api, http, protocols=("realtime", f"openai-insecure-api-key.{KEY}"))
        created = await _next(ws, "transcription_session.created")
        assert created["session"]["input_audio_format"] == "pcm16"
        assert api.sample("stt_active_sessions") == 1  # counts against the same session caps as gRPC
        for event, code in ((b"not json", "ERR1043"), ({"type": "response.create"}, "ERR1043"),
                            ({"type": "input_audio_buffer.append", "audio": "%%%"}, "ERR1043"),
                            ({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()},
                             "ERR1003"),
                            ({"type": "transcription_session.update",
                              "session": {"input_audio_transcription": {"model": "gpt-4o-transcribe"}}}, "ERR1042"),
                            ({"type": "transcription_session.update", "session": {"input_audio_format": "g711_ulaw"}},
                             "ERR1004")):
            if isinstance(event, bytes):
                await ws.send_str(event.decode())
            else:
                await ws.send_json({**event, "event_id": "client_1"})
            error = await _next(ws, "error")
            assert error["error"]["code"] == code, error
        await ws.send_json({"type": "transcription_session.update",
                            "session": {"input_audio_transcription": {"model": "whisper-1", "language": "en"}}})
        assert (await _next(ws, "transcription_session.updated"))["session"]["input_audio_transcription"]["model"]
        await ws.close()
        deadline = asyncio.get_running_loop().time() + 10
        while api.sample("stt_active_sessions") and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        await assert_no_leaks(api.server)
        assert api.sample("stt_grpc_requests_total", {"method": "StreamingRecognize", "protocol": "rest",
                                                      "grpc_status": "OK"}) == 1


@pytest.mark.slow
async def test_real_speech_gives_deltas_then_completed_per_commit(whisper_backend: WhisperBackend) -> None:
    engine = Engine(config=make_config(), metrics=ServerMetrics(CollectorRegistry()), backend=whisper_backend)
    first, second = "The weather today is sunny with a light breeze from the west.", \
        "Please call Stella and ask her to bring these things with her from the store."
    async with rest_server({"auth": {"api_keys": [KEY]}}, engine=engine) as api, aiohttp.ClientSession() as http:
        ws = await _open(api, http, headers={"Authorization": f"Bearer {KEY}"})
        await _next(ws, "transcription_session.created")
        transcripts = []
        for text in (first, second):
            audio = np.concatenate([silence(0.3), synthesize(text), silence(0.3)]).astype(np.float32)
            encoded = _b64_pcm24k(audio)
            step = 25_600  # base64 characters: 19,200 bytes = 0.4 s of 24 kHz pcm16, whole samples
            for start in range(0, len(encoded), step):
                await ws.send_json({"type": "input_audio_buffer.append", "audio": encoded[start:start + step]})
            await ws.send_json({"type": "input_audio_buffer.commit"})
            events: list[dict[str, Any]] = []
            async with asyncio.timeout(120):
                while not events or events[-1]["type"] != "conversation.item.input_audio_transcription.completed":
                    events.append(await ws.receive_json())
            kinds = [e["type"] for e in events]
            assert "input_audio_buffer.speech_started" in kinds
            deltas = "".join(e["delta"] for e in events if e["type"].endswith(".delta"))
            assert deltas == events[-1]["transcript"]
            assert wer(text, events[-1]["transcript"]) <= 0.15, events[-1]["transcript"]
            transcripts.append(events[-1])
        assert transcripts[0]["item_id"] != transcripts[1]["item_id"]
        await ws.close()
        await assert_no_leaks(api.server)

