"""The official ``openai`` package against a running server (real tiny.en, real synthesized speech):
every response format, streaming, every accepted container, and the README's curl and Python
examples. Transcripts must equal gRPC ``Recognize``'s for the same audio."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from audio_fixtures import silence, synthesize
from audio_fixtures import word_error_rate as wer
from grpc_harness import assert_no_leaks, make_config
from prometheus_client import CollectorRegistry
from rest_harness import RestServer, rest_server
from rest_media import ENCODINGS, encode, missing_encoder, to_wav
from stt_server.client import WavAudio
from stt_server.engine.backend import WhisperBackend
from stt_server.engine.engine import Engine
from stt_server.metrics import ServerMetrics
from stt_server.proto_gen import stt_pb2

pytestmark = pytest.mark.slow
KEY = "sk-local-test"
TEXTS = ("The weather today is sunny with a light breeze from the west.",
         "Please call Stella and ask her to bring these things with her from the store.")
README = Path(__file__).resolve().parents[3] / "README.md"


def speech(texts: tuple[str, ...] = TEXTS, *, gap_sec: float = 1.0) -> np.ndarray:
    parts: list[np.ndarray] = [silence(0.5)]
    for text in texts:
        parts += [synthesize(text), silence(gap_sec)]
    return np.concatenate(parts).astype(np.float32)


def real_engine(backend: WhisperBackend) -> Engine:
    return Engine(config=make_config(), metrics=ServerMetrics(CollectorRegistry()), backend=backend)


def client(api: RestServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=KEY, max_retries=0, timeout=120)


async def grpc_transcript(api: RestServer, samples: np.ndarray, *, words: bool = False) -> tuple[str, Any]:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    async with api.server.client(api_key=KEY) as grpc_client:
        if not words:
            response = await grpc_client.recognize(WavAudio(pcm=pcm, sample_rate_hz=16000))
        else:
            config = stt_pb2.RecognitionConfig(encoding=stt_pb2.LINEAR16, sample_rate_hertz=16000,
                                               enable_word_time_offsets=True)
            response = await grpc_client.stub.Recognize(
                stt_pb2.RecognizeRequest(config=config, audio_content=pcm), metadata=grpc_client.metadata)
    return " ".join(r.alternatives[0].transcript for r in response.results), response


async def test_openai_client_every_response_format_matches_grpc(whisper_backend: WhisperBackend) -> None:
    samples = speech()
    wav = to_wav(samples)
    async with rest_server({"auth": {"api_keys": [KEY]}}, engine=real_engine(whisper_backend)) as api:
        expected, _ = await grpc_transcript(api, samples)
        assert wer(" ".join(TEXTS), expected) <= 0.15, expected
        oa = client(api)

        as_json = await oa.audio.transcriptions.create(model="whisper-1", file=("speech.wav", wav, "audio/wav"))
        assert as_json.text == expected

        as_text = await oa.audio.transcriptions.create(model="whisper-1", file=("speech.wav", wav),
                                                       response_format="text")
        assert isinstance(as_text, str) and as_text.strip() == expected

        srt = await oa.audio.transcriptions.create(model="tiny.en", file=("speech.wav", wav), response_format="srt")
        # the first cue starts where the VAD heard speech begin (the 0.5 s lead is silence)
        assert re.match(r"1\n00:00:0\d,\d{3} --> 00:00:\d\d,\d{3}\n", srt), srt
        assert " ".join(line for line in srt.splitlines() if line and "-->" not in line
                        and not line.isdigit()) == expected

        vtt = await oa.audio.transcriptions.create(model="whisper-1", file=("speech.wav", wav), response_format="vtt")
        assert re.match(r"WEBVTT\n\n00:00:0\d\.\d{3} --> ", vtt) and expected in vtt.replace("\n", " ")

        verbose = await oa.audio.transcriptions.create(model="whisper-1", file=("speech.wav", wav),
                                                       response_format="verbose_json")
        assert verbose.text == expected
        assert verbose.segments and verbose.segments[0].text
        assert abs(verbose.duration - samples.size / 16000) < 0.01
        assert verbose.words is None

        expected_words, response = await grpc_transcript(api, samples, words=True)
        with_words = await oa.audio.transcriptions.create(
            model="whisper-1", file=("speech.wav", wav), response_format="verbose_json",
            timestamp_granularities=["word", "segment"])
        assert with_words.text == expected_words
        assert with_words.words is not None
        grpc_words = [w.word for r in response.results for w in r.alternatives[0].words]
        assert [w.word for w in with_words.words] == grpc_words and len(grpc_words) >= 10
        assert all(a.start <= b.start for a, b in zip(with_words.words, with_words.words[1:]))

        prompted = await oa.audio.transcriptions.create(model="whisper-1", file=("speech.wav", wav),
                                                        prompt="Stella, weather.", language="en", temperature=0)
        assert wer(" ".join(TEXTS), prompted.text) <= 0.15

        labels = {"method": "Recognize", "protocol": "rest", "grpc_status": "OK"}
        assert api.sample("stt_grpc_requests_total", labels) == 7
        assert api.sample("stt_grpc_requests_total", {**labels, "protocol": "grpc"}) == 2
        assert api.sample("grpc_request_duration_seconds_count",
                          {"service": "openai.v1.audio", "method": "Recognize", "protocol": "rest"}) == 7
        await oa.close()
        await assert_no_leaks(api.server)


async def test_streaming_sends_deltas_while_decoding(whisper_backend: WhisperBackend) -> None:
    # over Whisper's 30 s window, so faster-whisper decodes (and we send) more than one segment
    long_texts = (*TEXTS, "The quick brown fox jumps over the lazy dog.",
                  "Artificial intelligence is changing the way people work.") * 2
    samples = speech(long_texts, gap_sec=1.5)
    assert samples.size / 16000 > 32
    async with rest_server({"auth": {"api_keys": [KEY]}}, engine=real_engine(whisper_backend)) as api:
        expected, _ = await grpc_transcript(api, samples)
        oa = client(api)
        stream = await oa.audio.transcriptions.create(model="whisper-1", file=("long.wav", to_wav(samples)),
                                                      stream=True)
        arrivals: list[tuple[float, Any]] = []
        async for event in stream:
            arrivals.append((time.perf_counter(), event))
        kinds = [event.type for _, event in arrivals]
        assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) == {"transcript.text.delta"}
        assert len(kinds) >= 3, kinds
        deltas = "".join(event.delta for _, event in arrivals[:-1])
        assert deltas == arrivals[-1][1].text == expected
        # Recognize decodes VAD chunks in batches (engine/offline.py), so with two workers the
        # chunks of a 40 s file may all finish in one model call: the deltas then arrive together.
        await oa.close()
        await assert_no_leaks(api.server)


@pytest.mark.parametrize("container", ["flac", "mp3", "ogg", "webm", "m4a"])
async def test_every_accepted_container(whisper_backend: WhisperBackend, container: str) -> None:
    reason = missing_encoder(container)
    if reason:
        pytest.skip(reason)
    samples = speech(TEXTS[:1])
    spec = ENCODINGS[container]
    async with rest_server({"auth": {"api_keys": [KEY]}}, engine=real_engine(whisper_backend)) as api:
        expected, _ = await grpc_transcript(api, samples)
        oa = client(api)
        result = await oa.audio.transcriptions.create(model="whisper-1",
                                                      file=(spec.filename, encode(samples, container), spec.mime))
        if container == "flac":  # lossless: the very same samples, so the very same transcript
            assert result.text == expected
        else:
            assert wer(expected, result.text) <= 0.15, (expected, result.text)
        await oa.close()


def _readme_block(language: str) -> str:
    section = README.read_text().split("### OpenAI-compatible speech-to-text over HTTP", 1)[1]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match, f"no {language} example in the README's REST section"
    return match.group(1)


async def test_readme_curl_and_python_examples_run(whisper_backend: WhisperBackend, tmp_path: Path) -> None:
    samples = speech(TEXTS[:1])
    (tmp_path / "speech.wav").write_bytes(to_wav(samples))
    async with rest_server({"auth": {"api_keys": [KEY]}}, engine=real_engine(whisper_backend)) as api:
        expected, _ = await grpc_transcript(api, samples)
        host = f"127.0.0.1:{api.server.app.rest_port}"
        curl = _readme_block("bash").replace("localhost:8080", host)
        env = {**os.environ, "STT_API_KEY": KEY}
        proc = await asyncio.create_subprocess_exec("bash", "-c", curl, cwd=tmp_path, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err
        import json

        assert json.loads(out)["text"] == expected

        python = _readme_block("python").replace("localhost:8080", host).replace("your-stt-api-key", KEY)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", python, cwd=tmp_path, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err
        assert out.decode().strip() == expected
