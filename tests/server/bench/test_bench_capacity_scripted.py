"""``run_capacity`` end to end against a scripted gRPC server that holds exactly K streams.

The scripted server (from test_bench_load_fake_server) refuses CreateSession with
RESOURCE_EXHAUSTED for bench workers numbered K and up, so a trial at N > K has refused streams
and misses; the search must land on K, repeat it, and write both report files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import grpc
from rich.console import Console
from stt_server.bench.capacity import SearchSettings
from stt_server.bench.capacity_run import CapacityOptions, run_capacity, write_reports
from stt_server.bench.load import LoadOptions
from test_bench_load_fake_server import ScriptedSpeech, _short_clip, scripted_server  # noqa: F401 - fixture

HOLDS = 3


class HoldsK(ScriptedSpeech):
    async def CreateSession(self, request, context):
        worker = int(request.streaming_config.config.request_id.split("-")[1])  # "bench-<worker>-<turn>"
        if worker >= HOLDS:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "ERR1011: max sessions reached",
                                trailing_metadata=(("stt-error-code", "ERR1011"), ("stt-retry-after-sec", "30")))
        return await super().CreateSession(request, context)


async def test_capacity_finds_what_the_server_holds_and_writes_the_reports(
        scripted_server, tmp_path: Path) -> None:  # noqa: F811 - the imported fixture
    clip = _short_clip()
    target = await scripted_server(HoldsK(clip.plan))
    options = CapacityOptions(
        load=LoadOptions(server=target, sessions=1, duration_sec=0.1, realtime=False, label="scripted"),
        settings=SearchSettings(start=1, max_streams=16, repeats=2, budget_sec=120.0))
    console = Console(file=io.StringIO(), force_terminal=False)
    result, report = await run_capacity(options, inputs=[clip], console=console)
    assert result.p99_streams == HOLDS and result.worst_streams == HOLDS and result.p99_confirmed
    assert [t.streams for t in result.trials][:3] == [1, 2, 4]
    assert report is not None and report.workload.concurrent_sessions == HOLDS
    md, js = write_reports(result, report, server=target, out_dir=tmp_path, label="scripted")
    text = md.read_text()
    assert "maxSessions: 3" in text and "targetActiveSessionsPerReplica: 2" in text
    assert "### Load Test Report" in text and "First partial P50/P90/P99" in text  # seed 002's report
    data = json.loads(js.read_text())
    assert data["p99_streams"] == HOLDS and data["cpu_count"] and len(data["load_average_end"]) == 3
    assert data["report_at_capacity"]["workload"]["concurrent_sessions"] == HOLDS
    assert all(trial["load_average"] is not None for trial in data["trials"])  # how busy the host was
