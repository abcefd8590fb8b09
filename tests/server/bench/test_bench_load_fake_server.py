"""``run_load`` against a scripted gRPC server: latencies on the audio clock, errors by code, files.

The fake server answers each planned utterance with a partial 0.3 s of audio after its start and a
final 0.2 s of audio after its end, so with real-time pacing the bench must measure about those
figures; refused sessions and failed streams must land in the error tally with their codes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from rich.console import Console
from stt_server.bench.cli import write_report
from stt_server.bench.latency import Utterance
from stt_server.bench.load import LoadOptions, run_load
from stt_server.bench.workload import StreamAudio, compose
from stt_server.proto_gen import stt_pb2, stt_pb2_grpc

PARTIAL_AFTER_START_SEC = 0.3
FINAL_AFTER_END_SEC = 0.2


def _short_clip() -> StreamAudio:
    tone = 0.3 * np.sin(np.linspace(0, 2 * np.pi * 220 * 0.6, 9600, dtype=np.float32))
    return compose([tone, tone], texts=["one", "two"], lead_sec=0.5, gap_sec=0.4, tail_sec=0.5)


def _result(u: Utterance, *, is_final: bool, end_sec: float) -> stt_pb2.StreamingRecognizeResponse:
    return stt_pb2.StreamingRecognizeResponse(results=[stt_pb2.StreamingRecognitionResult(
        alternatives=[stt_pb2.SpeechRecognitionAlternative(transcript=u.text)], is_final=is_final,
        result_start_sec=u.start_sec, result_end_sec=end_sec, utterance_index=u.index)])


class ScriptedSpeech(stt_pb2_grpc.SpeechToTextServicer):
    def __init__(self, plan: tuple[Utterance, ...], *, refuse_first: int = 0, fail_streams: bool = False,
                 ghost_final: bool = False) -> None:
        self.plan = plan
        self.ghost_final = ghost_final
        self.refuse_first = refuse_first
        self.fail_streams = fail_streams
        self.creates = 0

    async def CreateSession(self, request, context):
        self.creates += 1
        if self.refuse_first > 0:
            self.refuse_first -= 1
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "ERR1011: max sessions reached (1)",
                                trailing_metadata=(("stt-error-code", "ERR1011"), ("stt-retry-after-sec", "0.05")))
        return stt_pb2.CreateSessionResponse(session_id=f"s{self.creates}")

    async def GetServerInfo(self, request, context):
        return stt_pb2.GetServerInfoResponse(
            version="scripted", models=[stt_pb2.ModelInfo(name="none", device="cpu", compute_type="none")],
            limits=stt_pb2.Limits(max_sessions=1))

    async def StreamingRecognize(self, request_iterator, context) -> AsyncIterator[stt_pb2.StreamingRecognizeResponse]:
        audio_sec, partials, finals = 0.0, set(), set()
        async for request in request_iterator:
            if not request.audio_content:
                continue
            audio_sec += len(request.audio_content) / 32000
            if self.fail_streams and audio_sec > 1.0:
                await context.abort(grpc.StatusCode.INTERNAL, "ERR1099: internal error: scripted",
                                    trailing_metadata=(("stt-error-code", "ERR1099"),))
            for u in self.plan:
                if u.index not in partials and audio_sec >= u.start_sec + PARTIAL_AFTER_START_SEC:
                    partials.add(u.index)
                    yield _result(u, is_final=False, end_sec=audio_sec)
                if u.index not in finals and audio_sec >= u.end_sec + FINAL_AFTER_END_SEC:
                    finals.add(u.index)
                    yield _result(u, is_final=True, end_sec=u.end_sec)
        if self.ghost_final:
            # A "hallucinated" final over the trailing silence, far from any planned utterance.
            ghost = Utterance(99, audio_sec + 5.0, audio_sec + 6.0, "thank you")
            yield _result(ghost, is_final=True, end_sec=ghost.end_sec)


@pytest.fixture
async def scripted_server():
    servers: list[grpc.aio.Server] = []

    async def start(servicer: ScriptedSpeech) -> str:
        server = grpc.aio.server()
        stt_pb2_grpc.add_SpeechToTextServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    try:
        yield start
    finally:
        for server in servers:
            await server.stop(0)


def _quiet() -> Console:
    return Console(file=open("/dev/null", "w"), force_terminal=False)


async def test_realtime_latencies_match_the_script(scripted_server, tmp_path: Path) -> None:
    clip = _short_clip()
    target = await scripted_server(ScriptedSpeech(clip.plan))
    options = LoadOptions(server=target, sessions=2, duration_sec=0.2, realtime=True, label="scripted")
    report = await run_load(options, console=_quiet(), inputs=[clip])
    assert report.workload.streams_started == 2 and report.workload.utterances_sent == 4
    assert report.first_partial.count == 4 and report.final.count == 4 and report.missing_finals == 0
    # 100 ms chunks: the server sees the triggering sample up to one chunk late.
    assert PARTIAL_AFTER_START_SEC - 0.05 <= report.first_partial.p50 <= PARTIAL_AFTER_START_SEC + 0.25
    assert FINAL_AFTER_END_SEC - 0.05 <= report.final.p50 <= FINAL_AFTER_END_SEC + 0.25
    assert report.create_session.count == 2 and report.create_session.p99 < 0.3
    assert report.errors.failures == 0 and report.errors.attempts == 4
    assert {r.name: r.verdict for r in report.slo} == {
        "create_session_p99": "met", "first_partial_p99": "met", "final_p99": "met", "error_rate": "met"}
    assert report.server_version == "scripted" and report.config_limits["max_sessions"] == 1
    md, js = write_report(report, tmp_path)
    assert md.name == "load-scripted.md" and "| CreateSession P99 | <= 0.3 s |" in md.read_text()
    assert json.loads(js.read_text())["workload"]["streams_started"] == 2


async def test_refused_sessions_count_by_code_but_not_against_availability(scripted_server) -> None:
    clip = _short_clip()
    servicer = ScriptedSpeech(clip.plan, refuse_first=1)
    target = await scripted_server(servicer)
    report = await run_load(LoadOptions(server=target, sessions=1, duration_sec=0.5, realtime=False),
                            console=_quiet(), inputs=[clip])
    assert report.errors.by_code == {"ERR1011": 1}
    assert report.errors.by_status == {"RESOURCE_EXHAUSTED": 1}
    assert report.errors.availability_rate == 0.0
    assert servicer.creates >= 2  # the worker waited the retry hint and tried again


async def test_failed_streams_miss_the_error_slo(scripted_server) -> None:
    clip = _short_clip()
    target = await scripted_server(ScriptedSpeech(clip.plan, fail_streams=True))
    # Real-time pacing: the abort does not race a flood of writes (which grpc-core may report as a
    # bare INTERNAL without the server's trailing metadata).
    report = await run_load(LoadOptions(server=target, sessions=1, duration_sec=0.1, realtime=True),
                            console=_quiet(), inputs=[clip])
    assert report.errors.by_code == {"ERR1099": 1} and report.errors.by_status == {"INTERNAL": 1}
    verdicts = {r.name: r.verdict for r in report.slo}
    assert verdicts["error_rate"] == "missed"


async def test_finals_over_silence_are_counted_as_spurious(scripted_server) -> None:
    clip = _short_clip()
    target = await scripted_server(ScriptedSpeech(clip.plan, ghost_final=True))
    report = await run_load(LoadOptions(server=target, sessions=2, duration_sec=0.05, realtime=False),
                            console=_quiet(), inputs=[clip])
    assert report.spurious_finals == report.workload.streams_started >= 2
    assert report.final.count == 2 * report.workload.streams_started  # real finals still matched


def test_cli_reports_an_unreachable_server(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from stt_server.bench.cli import main

    code = main(["load", "--server", "127.0.0.1:1", "--sessions", "1", "--duration", "1", "--input", "silence",
                 "--connect-timeout", "0.5", "--out-dir", str(tmp_path)])
    assert code == 2
    assert "no gRPC server answered at 127.0.0.1:1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_rejects_nonsense_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    from stt_server.bench.cli import main

    assert main(["load", "--server", "x:1", "--sessions", "0", "--duration", "1"]) == 2
    assert main(["offline"]) == 2
    assert "give --server, --direct, or both" in capsys.readouterr().err
