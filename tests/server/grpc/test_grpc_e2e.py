"""End to end on the real engine (bundled tiny.en, loaded once): speech in, live text out."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json

import pytest
from audio_fixtures import word_error_rate as wer
from grpc_harness import assert_no_leaks, make_config, running_server
from grpc_speech import SENTENCES, speech_then_speech, speech_wav
from prometheus_client import CollectorRegistry
from stt_server.client import streaming_config
from stt_server.client_cli import main as client_main
from stt_server.engine.backend import WhisperBackend
from stt_server.engine.engine import Engine
from stt_server.metrics import ServerMetrics

pytestmark = pytest.mark.slow


def real_engine(backend: WhisperBackend, overrides: dict[str, dict[str, object]] | None = None) -> Engine:
    return Engine(config=make_config(overrides), metrics=ServerMetrics(CollectorRegistry()), backend=backend)


async def test_realtime_stream_partials_before_final_and_accurate_final(whisper_backend: WhisperBackend) -> None:
    text = SENTENCES[0]
    audio = speech_wav(text)
    engine = real_engine(whisper_backend)
    async with running_server(engine=engine) as server, server.client() as client:
        outcome = await client.stream(audio, realtime=True)
        assert outcome.error is None
        first_partial = next(t for t, r in zip(outcome.arrival_sec, outcome.responses)
                             if any(not x.is_final for x in r.results))
        final_at = next(t for t, r in zip(outcome.arrival_sec, outcome.responses)
                        if any(x.is_final for x in r.results))
        speech_end = audio.duration_sec - 1.0
        assert first_partial < speech_end, "a partial should arrive while the speaker is still talking"
        assert first_partial < final_at
        assert wer(text, outcome.transcript) <= 0.10, outcome.transcript
        assert int(outcome.trailing["stt-decode-count"]) >= 2
        await assert_no_leaks(server)


async def test_stt_client_cli_realtime(whisper_backend: WhisperBackend, tmp_path: object) -> None:
    import wave
    from pathlib import Path

    text = SENTENCES[1]
    audio = speech_wav(text)
    path = Path(str(tmp_path)) / "speech.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(audio.pcm)
    async with running_server(engine=real_engine(whisper_backend)) as server:
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(client_main, ["transcribe", str(path), "--server", server.target,
                                                     "--realtime"], out=out, err=err)
        assert code == 0, err.getvalue()
        assert "partial:" in err.getvalue()
        assert wer(text, out.getvalue()) <= 0.10, out.getvalue()
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(client_main, ["transcribe", str(path), "--server", server.target, "--json"],
                                       out=out, err=err)
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert code == 0
        assert any(r.get("is_final") for line in lines for r in line.get("results", []))
        assert "stt-decode-total-sec" in lines[-1]["trailing_metadata"]


async def test_recognize_whole_file(whisper_backend: WhisperBackend) -> None:
    text = SENTENCES[0]
    async with running_server(engine=real_engine(whisper_backend)) as server, server.client() as client:
        response = await client.recognize(speech_wav(text))
        transcript = " ".join(r.alternatives[0].transcript for r in response.results)
        assert wer(text, transcript) <= 0.10, transcript


async def test_real_engine_stream_buffer_cap_leaves_other_streams_alone(whisper_backend: WhisperBackend) -> None:
    overrides = {"limits": {"max_stream_buffer_bytes": 96000}}  # 3 s: shorter than the long utterance
    engine = real_engine(whisper_backend, overrides)
    async with running_server(overrides, engine=engine) as server:
        async with server.client() as flooding, server.client() as paced:
            long_speech = speech_wav(SENTENCES[0] + " " + SENTENCES[1])
            failing, fine = await asyncio.gather(
                flooding.stream(long_speech), paced.stream(speech_wav("Good morning everyone."), realtime=True,
                                                           config=streaming_config(interim_results=True)),
            )
        assert failing.error is not None and failing.error.error_code == "ERR1014"
        assert fine.error is None and "morning" in fine.transcript.lower()
        await assert_no_leaks(server)


async def test_real_engine_client_vanishing_mid_stream_leaks_nothing(whisper_backend: WhisperBackend) -> None:
    engine = real_engine(whisper_backend)
    async with running_server(engine=engine) as server, server.client() as client:
        got_partial = asyncio.Event()
        stream = asyncio.create_task(client.stream(
            speech_wav(SENTENCES[1]), realtime=True,
            on_response=lambda r: got_partial.set() if any(not x.is_final for x in r.results) else None))
        await asyncio.wait_for(got_partial.wait(), timeout=30)
        stream.cancel()  # the client goes away while decodes are scheduled
        with contextlib.suppress(asyncio.CancelledError):
            await stream
        await assert_no_leaks(server)
        assert engine.open_streams == 0
        again = await client.stream(speech_wav("Good morning everyone."))
        assert again.error is None and "morning" in again.transcript.lower()


async def test_real_engine_single_utterance(whisper_backend: WhisperBackend) -> None:
    from stt_server.proto_gen import stt_pb2

    async with running_server(engine=real_engine(whisper_backend)) as server, server.client() as client:
        two_utterances = speech_then_speech(SENTENCES[0], SENTENCES[1])
        outcome = await client.stream(two_utterances, config=streaming_config(single_utterance=True))
        assert outcome.error is None
        assert len(outcome.finals) == 1
        assert wer(SENTENCES[0], outcome.transcript) <= 0.10, outcome.transcript
        events = [r.speech_event.type for r in outcome.responses if r.HasField("speech_event")]
        assert stt_pb2.SpeechEvent.END_OF_SINGLE_UTTERANCE in events
        await assert_no_leaks(server)


async def test_two_utterances_two_finals_in_order(whisper_backend: WhisperBackend) -> None:
    async with running_server(engine=real_engine(whisper_backend)) as server, server.client() as client:
        outcome = await client.stream(speech_then_speech(SENTENCES[0], SENTENCES[1]),
                                      config=streaming_config(word_time_offsets=True))
        assert outcome.error is None
        finals = outcome.finals
        assert [f.utterance_index for f in finals] == [0, 1]
        assert finals[0].result_end_sec <= finals[1].result_start_sec
        for final, text in zip(finals, SENTENCES, strict=True):
            assert wer(text, final.alternatives[0].transcript) <= 0.10
            assert final.alternatives[0].words, "word offsets were requested"
            assert final.stability == 1.0 and final.language_code == "en"
        await assert_no_leaks(server)
