"""The per-call figures seeds 003 and 004 name, measured by the real gRPC server (fake engine)."""

from __future__ import annotations

from grpc_harness import running_server, tone
from stt_server.metrics_compat import GRPC_SERVICE


async def test_streams_and_recognize_count_chunks_audio_load_and_call_duration() -> None:
    async with running_server() as server, server.client() as client:
        audio = tone(1.0)
        outcome = await client.stream(audio)
        assert outcome.error is None
        result = await client.recognize(audio)
        assert result.results

        chunks = server.gauge("audio_chunks_processed_total")
        assert chunks is not None and chunks >= 10  # 1 s of audio in 100 ms messages
        assert server.gauge("whisper_audio_load_duration_seconds_count", {"kind": "stream"}) == chunks
        assert server.gauge("whisper_audio_load_duration_seconds_count", {"kind": "offline"}) == 1
        stream_calls = {"service": GRPC_SERVICE, "method": "StreamingRecognize", "protocol": "grpc"}
        assert server.gauge("grpc_request_duration_seconds_count", stream_calls) == 1
        assert (server.gauge("grpc_request_duration_seconds_sum", stream_calls) or 0) > 0
        assert server.gauge("transcription_sessions_total", {"status": "OK"}) == 1
        assert server.gauge("whisper_transcription_requests_total") == 2
