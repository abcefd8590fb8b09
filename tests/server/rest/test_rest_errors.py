"""Bad requests on the REST API each get their own catalogue error in OpenAI's shape, and the server
keeps serving: after every one, a good upload still succeeds (fake engine: no model needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import numpy as np
import pytest
from grpc_fakes import FakeEngine
from grpc_harness import assert_no_leaks
from rest_harness import RestServer, form, post_transcription, rest_server
from rest_media import encode, to_wav

KEY = "rest-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
GOOD = to_wav((np.sin(np.arange(16_000) / 8) * 0.3).astype(np.float32))


async def assert_still_serving(api: RestServer) -> None:
    status, body, _ = await post_transcription(api.base_url, form(GOOD, model="whisper-1"), headers=AUTH)
    assert status == 200, body
    assert isinstance(body, dict) and body["text"] == "fake 16000 samples"


def assert_error(status: int, body: Any, *, http: int, code: str, param: str | None = None) -> None:
    assert status == http, body
    assert isinstance(body, dict), body
    error = body["error"]
    assert error["code"] == code, error
    assert error["message"].startswith(f"{code}: ")
    assert error["type"] in ("invalid_request_error", "authentication_error", "rate_limit_error", "server_error")
    if param is not None:
        assert error["param"] == param


BAD_UPLOADS: list[tuple[str, dict[str, Any], int, str, str | None]] = [
    ("no file", {"audio": None, "model": "whisper-1"}, 400, "ERR1040", "file"),
    ("empty file", {"audio": b"", "model": "whisper-1"}, 400, "ERR1007", "file"),
    ("corrupt file", {"audio": bytes(range(256)) * 40, "filename": "x.mp3", "model": "whisper-1"}, 400,
     "ERR1023", "file"),
    ("unsupported format", {"audio": "aiff", "filename": "x.aiff", "model": "whisper-1"}, 400, "ERR1004", "file"),
    ("unknown model", {"audio": GOOD, "model": "gpt-9-transcribe"}, 404, "ERR1042", "model"),
    ("unknown response format", {"audio": GOOD, "response_format": "docx"}, 400, "ERR1043", "response_format"),
    ("temperature out of range", {"audio": GOOD, "temperature": "7"}, 400, "ERR1043", "temperature"),
    ("bad granularity", {"audio": GOOD, "response_format": "verbose_json", "timestamp_granularities[]": "char"},
     400, "ERR1043", "timestamp_granularities[]"),
    ("non-English language on tiny.en", {"audio": GOOD, "language": "de"}, 400, "ERR1022", "language"),
]


@pytest.mark.parametrize(("case", "fields", "http", "code", "param"), BAD_UPLOADS, ids=[c[0] for c in BAD_UPLOADS])
async def test_bad_upload_gets_its_error_and_the_server_keeps_serving(
        case: str, fields: dict[str, Any], http: int, code: str, param: str | None) -> None:
    fields = dict(fields)
    audio = fields.pop("audio")
    if audio == "aiff":
        audio = encode(np.zeros(16_000, np.float32), "aiff")
    async with rest_server({"auth": {"api_keys": [KEY]}}) as api:
        status, body, headers = await post_transcription(api.base_url, form(audio, **fields), headers=AUTH)
        assert_error(status, body, http=http, code=code, param=param)
        assert headers["X-Stt-Error-Code"] == code
        await assert_still_serving(api)
        labels = {"method": "Recognize", "protocol": "rest"}
        assert api.sample("stt_grpc_requests_total", {**labels, "grpc_status": "OK"}) == 1
        assert api.sample("stt_errors_total", {"code": code, "grpc_status": _grpc_status(code)}) == 1
        await assert_no_leaks(api.server)


def _grpc_status(code: str) -> str:
    from stt_server.errors import CATALOGUE, ErrorCode

    return CATALOGUE[ErrorCode(code)].status.name


async def test_wrong_and_missing_key_are_401_with_the_grpc_codes() -> None:
    async with rest_server({"auth": {"api_keys": [KEY]}}) as api:
        status, body, _ = await post_transcription(api.base_url, form(GOOD), headers={"Authorization": "Bearer nope"})
        assert_error(status, body, http=401, code="ERR1019")
        assert isinstance(body, dict) and body["error"]["type"] == "authentication_error"
        status, body, _ = await post_transcription(api.base_url, form(GOOD))
        assert_error(status, body, http=401, code="ERR1018")
        async with aiohttp.ClientSession() as http, http.get(f"{api.base_url}/v1/models") as reply:
            assert reply.status == 401
            assert (await reply.json())["error"]["code"] == "ERR1018"
        await assert_still_serving(api)


async def test_upload_over_the_limit_is_413_and_the_connection_stays_usable_for_the_next_request() -> None:
    async with rest_server({"server": {"rest_max_upload_bytes": 64 * 1024}}) as api:
        big = to_wav(np.zeros(16_000 * 5, np.float32))  # 160 KB
        status, body, _ = await post_transcription(api.base_url, form(big))
        assert_error(status, body, http=413, code="ERR1041", param="file")
        # no Content-Length up front (chunked): the limit is applied while reading
        payload = form(big)()
        writer = _Collect()
        await payload.write(writer)  # type: ignore[arg-type]  # only write() is called

        async def chunks() -> Any:
            for start in range(0, len(writer.data), 8192):
                yield bytes(writer.data[start:start + 8192])
        async with aiohttp.ClientSession() as http, \
                http.post(f"{api.base_url}/v1/audio/transcriptions", data=chunks(),
                          headers={"Content-Type": payload.content_type}) as reply:
            assert reply.status == 413
            assert (await reply.json())["error"]["code"] == "ERR1041"
        status, body, _ = await post_transcription(api.base_url, form(GOOD))
        assert status == 200, body


class _Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.data += chunk


async def test_client_disconnecting_mid_upload_is_counted_and_leaves_nothing_behind() -> None:
    async with rest_server() as api:
        boundary = "xyzBOUNDARY"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                "Content-Type: audio/wav\r\n\r\n").encode() + GOOD[:4000]
        request = (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 200000\r\n\r\n").encode()
        port = api.server.app.rest_port
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request + head)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        deadline = asyncio.get_running_loop().time() + 10
        labels = {"code": "ERR1045", "grpc_status": "CANCELLED"}
        while api.sample("stt_errors_total", labels) < 1 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert api.sample("stt_errors_total", labels) == 1
        assert api.sample("stt_grpc_requests_total",
                          {"method": "Recognize", "protocol": "rest", "grpc_status": "CANCELLED"}) == 1
        assert not api.server.engine.recognized, "nothing reaches the engine from a torn upload"
        await assert_still_serving(api)
        await assert_no_leaks(api.server)


async def test_not_multipart_unknown_route_and_wrong_method() -> None:
    async with rest_server() as api, aiohttp.ClientSession() as http:
        async with http.post(f"{api.base_url}/v1/audio/transcriptions", json={"file": "x"}) as reply:
            assert_error(reply.status, await reply.json(), http=400, code="ERR1044")
        async with http.get(f"{api.base_url}/v1/audio/translations") as reply:
            assert_error(reply.status, await reply.json(), http=404, code="ERR1046")
        async with http.get(f"{api.base_url}/v1/audio/transcriptions") as reply:
            assert_error(reply.status, await reply.json(), http=405, code="ERR1047")
            assert "POST" in reply.headers["Allow"]
        await assert_still_serving(api)


async def test_models_lists_the_served_model_and_whisper_1() -> None:
    async with rest_server() as api, aiohttp.ClientSession() as http:
        async with http.get(f"{api.base_url}/v1/models") as reply:
            assert reply.status == 200
            ids = [m["id"] for m in (await reply.json())["data"]]
        assert ids == ["tiny.en", "whisper-1"]
        async with http.get(f"{api.base_url}/v1/models/whisper-1") as reply:
            assert (await reply.json())["id"] == "whisper-1"
        async with http.get(f"{api.base_url}/v1/models/gpt-9") as reply:
            assert_error(reply.status, await reply.json(), http=404, code="ERR1042")


async def test_rate_limit_is_shared_with_grpc() -> None:
    async with rest_server({"auth": {"api_keys": [KEY]}, "limits": {"requests_per_minute_per_api_key": 2}}) as api:
        async with api.server.client(api_key=KEY) as grpc_client:
            await grpc_client.recognize(_tone_wav())  # one token spent over gRPC
        status, body, _ = await post_transcription(api.base_url, form(GOOD), headers=AUTH)
        assert status == 200, body
        status, body, headers = await post_transcription(api.base_url, form(GOOD), headers=AUTH)
        assert_error(status, body, http=429, code="ERR1013")
        assert isinstance(body, dict) and body["error"]["type"] == "rate_limit_error"
        assert int(headers["Retry-After"]) >= 1


def _tone_wav() -> Any:
    from grpc_harness import tone

    return tone(0.5)


async def test_rest_port_zero_turns_the_api_off() -> None:
    from grpc_harness import running_server

    async with running_server() as server:  # the harness sets rest_port 0
        assert server.app.rest_port == 0
        assert server.app.info()["rest_port"] == 0


class _GatedEngine(FakeEngine):
    """Holds every recognize until ``gate`` opens, so a test can drain with a REST call in flight."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def recognize(self, audio: Any, *, options: Any) -> Any:
        self.entered.set()
        await self.gate.wait()
        return await super().recognize(audio, options=options)


async def test_drain_refuses_new_rest_calls_and_waits_for_the_one_in_flight() -> None:
    engine = _GatedEngine()
    async with rest_server({"server": {"drain_grace_sec": 20.0}}, engine=engine) as api:
        in_flight = asyncio.create_task(post_transcription(api.base_url, form(GOOD)))
        await asyncio.wait_for(engine.entered.wait(), 10)
        drain = asyncio.create_task(api.server.app.drain())
        deadline = asyncio.get_running_loop().time() + 10
        while not api.server.app.state.draining and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        status, body, headers = await post_transcription(api.base_url, form(GOOD))
        assert_error(status, body, http=503, code="ERR1020")
        assert headers["Retry-After"] == "1"
        assert not drain.done(), "the drain must wait for the REST call in flight"
        engine.gate.set()
        status, body, _ = await asyncio.wait_for(in_flight, 10)
        assert status == 200 and isinstance(body, dict) and body["text"] == "fake 16000 samples"
        await asyncio.wait_for(drain, 10)


class _SegmentEngine(FakeEngine):
    """Sends one segment through ``on_segment``, then fails the decode (or not)."""

    def __init__(self, *, fail: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail = fail

    async def recognize(self, audio: Any, *, options: Any, on_segment: Any = None, **extra: Any) -> Any:
        from types import SimpleNamespace

        from stt_server.engine.errors import ModelError

        if on_segment is not None:
            on_segment(SimpleNamespace(text=" first window "))
        await asyncio.sleep(0)
        if self.fail:
            raise ModelError("the model fell over")
        return await super().recognize(audio, options=options)


async def test_an_error_after_the_stream_began_is_an_error_event_the_openai_sdk_raises() -> None:
    import openai

    async with rest_server(engine=_SegmentEngine(fail=True)) as api:
        client = openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key="x", max_retries=0)
        stream = await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", GOOD), stream=True)
        seen: list[Any] = []
        with pytest.raises(openai.APIError) as caught:
            async for event in stream:
                seen.append(event)
        assert [e.type for e in seen] == ["transcript.text.delta"] and seen[0].delta == "first window"
        assert "ERR1030" in str(caught.value)
        await client.close()
        assert api.sample("stt_grpc_requests_total", {"method": "Recognize", "protocol": "rest",
                                                      "grpc_status": "INTERNAL"}) == 1
        assert api.sample("stt_errors_total", {"code": "ERR1030", "grpc_status": "INTERNAL"}) == 1
