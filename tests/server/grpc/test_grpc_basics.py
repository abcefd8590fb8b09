"""Happy paths through the real gRPC server with a fake engine: sessions, streams, info, health."""

from __future__ import annotations

import grpc
import pytest
from grpc_harness import assert_no_leaks, running_server, tone
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from stt_server.client import streaming_config
from stt_server.proto_gen import stt_pb2


async def test_session_stream_gets_partials_then_final_and_timing_trailers() -> None:
    async with running_server() as server, server.client() as client:
        outcome = await client.stream(tone(2.0), config=streaming_config(request_id="req-1"))
        assert outcome.error is None
        assert len(outcome.partials) >= 3
        assert outcome.finals[-1].alternatives[0].transcript == "fake 32000 samples"
        assert outcome.responses[-1].request_id == "req-1"
        assert outcome.responses[-1].session_id == outcome.session_id
        events = [r.speech_event.type for r in outcome.responses if r.HasField("speech_event")]
        assert events == [stt_pb2.SpeechEvent.SPEECH_BEGIN, stt_pb2.SpeechEvent.SPEECH_END]
        trailing = outcome.trailing
        assert int(trailing["stt-decode-count"]) == server.engine.all_streams[0].decode_count > 0
        for key in ("buffer-wait", "queue-wait", "inference", "response-emit", "total"):
            assert float(trailing[f"stt-decode-{key}-sec"]) >= 0
        assert float(trailing["stt-decode-total-sec"]) > 0
        assert server.gauge("stt_sessions_created_total") == 1
        assert server.gauge("stt_streams_started_total") == 1
        await assert_no_leaks(server)


async def test_inline_config_and_resampling_48k() -> None:
    async with running_server() as server, server.client() as client:
        outcome = await client.stream(tone(1.0, rate=48000), use_session=False)
        assert outcome.error is None
        fed = server.engine.all_streams[0].samples
        assert abs(fed - 16000) <= 200  # 48 kHz in, 16 kHz fed
        assert server.gauge("stt_sessions_created_total") == 0
        await assert_no_leaks(server)


async def test_stereo_is_downmixed() -> None:
    async with running_server() as server, server.client() as client:
        mono = tone(0.5)
        import numpy as np

        samples = np.frombuffer(mono.pcm, dtype="<i2")
        stereo = np.stack([samples, samples], axis=1).reshape(-1).tobytes()
        from stt_server.client import WavAudio

        outcome = await client.stream(WavAudio(stereo, 16000, channels=2))
        assert outcome.error is None
        assert server.engine.all_streams[0].samples == 8000


async def test_single_utterance_ends_after_first_final() -> None:
    async with running_server() as server, server.client() as client:
        outcome = await client.stream(tone(3.0), config=streaming_config(single_utterance=True))
        assert outcome.error is None
        assert [f.alternatives[0].transcript for f in outcome.finals] == ["fake 8000 samples"]
        events = [r.speech_event.type for r in outcome.responses if r.HasField("speech_event")]
        assert events[-1] == stt_pb2.SpeechEvent.END_OF_SINGLE_UTTERANCE
        await assert_no_leaks(server)


async def test_recognize_and_server_info() -> None:
    async with running_server() as server, server.client() as client:
        response = await client.recognize(tone(1.5, rate=8000))
        assert response.results[0].is_final
        assert abs(response.audio_duration_sec - 1.5) < 0.02
        info = await client.server_info()
        assert info.models[0].name == "fake"
        assert info.ready
        assert info.limits.max_sessions == 32
        assert stt_pb2.LINEAR16 in info.encodings and 44100 in info.sample_rates_hertz
        assert not info.api_key_required


async def test_health_service_and_reflection() -> None:
    async with running_server() as server, grpc.aio.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "sttfleet.v1.SpeechToText"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = set()
        async for reply in replies:
            names |= {s.name for s in reply.list_services_response.service}
        assert "sttfleet.v1.SpeechToText" in names and "grpc.health.v1.Health" in names


async def test_not_ready_while_loading() -> None:
    from grpc_fakes import FakeEngine
    from grpc_harness import make_config
    from stt_server.app import SttServerApp

    engine = FakeEngine(load_delay_sec=30)
    app = SttServerApp(make_config(), engine=engine)
    import asyncio

    task = asyncio.create_task(app.start())
    try:
        while app.grpc_port == 0 or app.http_port == 0:
            await asyncio.sleep(0.01)
        from stt_server.client import SttClient, SttClientError

        async with SttClient(f"127.0.0.1:{app.grpc_port}") as client:
            try:
                await client.create_session(streaming_config())
            except SttClientError as exc:
                assert exc.error_code == "ERR1021"
                assert exc.status is grpc.StatusCode.UNAVAILABLE
                assert exc.retry_after_sec == 5
            else:
                raise AssertionError("CreateSession succeeded while loading")
        assert app.health().loading and not app.health().ready
    finally:
        task.cancel()
        await app.stop()


async def test_persist_audio_writes_one_wav_per_session(tmp_path: object) -> None:
    import wave
    from pathlib import Path

    directory = Path(str(tmp_path))
    async with running_server({"storage": {"persist_audio": True, "directory": str(directory)}}) as server, \
            server.client() as client:
        first = await client.stream(tone(1.0))
        second = await client.stream(tone(0.5, rate=8000), use_session=False)
        assert first.error is None and second.error is None
        assert server.app.capture is not None and server.app.capture.flush()
        files = sorted(directory.glob("*.wav"))
        assert len(files) == 2
        assert any(f.name.endswith(f"_{first.session_id}.wav") for f in files)
        frames = []
        for path in files:
            with wave.open(str(path)) as handle:
                assert handle.getframerate() == 16000
                frames.append(handle.getnframes())
        assert sorted(frames) == [pytest.approx(8000, abs=200), 16000]


async def test_unused_sessions_expire_without_traffic() -> None:
    async with running_server({"limits": {"session_ttl_sec": 0.2}}) as server, server.client() as client:
        await client.create_session(streaming_config())
        assert server.gauge("stt_active_sessions") == 1
        await assert_no_leaks(server, timeout=3)  # the sweeper expires it


async def test_tls_when_cert_and_key_are_configured(tmp_path: object) -> None:
    from pathlib import Path

    from stt_server.client import SttClient
    from stt_server.tools.self_signed_cert import write_self_signed

    cert, key = Path(str(tmp_path)) / "server.crt", Path(str(tmp_path)) / "server.key"
    write_self_signed(cert, key, days=1)
    overrides = {"server": {"tls": {"cert_file": str(cert), "key_file": str(key)}}}
    async with running_server(overrides) as server:
        async with SttClient(server.target, root_certificates=cert.read_bytes()) as secure:
            assert (await secure.stream(tone(0.6))).error is None
        async with SttClient(server.target) as plain:
            with pytest.raises(TimeoutError):
                await plain.wait_ready(timeout=1.0)  # plaintext cannot talk to a TLS port


async def test_control_plane_sees_sessions_and_hashed_keys() -> None:
    import aiohttp
    from stt_server.grpc_service.auth import key_id_for

    async with running_server({"auth": {"api_keys": ["demo-key"]}}) as server, server.client("demo-key") as client:
        await client.create_session(streaming_config())
        url = f"http://127.0.0.1:{server.app.http_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/metrics.json") as reply:
                body = await reply.json()
            async with http.get(f"{url}/health/ready") as ready:
                assert ready.status == 200
            async with http.get(f"{url}/info") as info:
                assert (await info.json())["limits"]["max_sessions"] == 32
        assert body["metrics"]["active_sessions"] == 1
        assert body["metrics"]["api_key_sessions"] == {key_id_for("demo-key"): 1}
        assert "demo-key" not in str(body)
