"""``stt-bench load``: N concurrent real-time streams for a while, then seed 002's report.

Each of the N workers runs streams back to back (CreateSession, stream the clip, repeat) until the
duration has passed; a worker refused with a retry hint waits that long before trying again, as a
well-behaved client would. Progress is shown with ``rich`` on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from stt_server.bench.notes import derive_notes
from stt_server.bench.probe import ControlProbe, resource_delta, server_side_delta
from stt_server.bench.report import LoadReport, ResourceDelta, Workload
from stt_server.bench.slo import ErrorTally, evaluate
from stt_server.bench.stats import summarize
from stt_server.bench.streams import StreamRecord, run_stream
from stt_server.bench.workload import InputKind, StreamAudio, build_inputs
from stt_server.client import SttClient, SttClientError


@dataclass(frozen=True)
class LoadOptions:
    server: str
    sessions: int
    duration_sec: float
    realtime: bool = True
    input: InputKind = "speech"
    api_key: str | None = None
    http_url: str | None = None
    token: str | None = None
    insecure: bool = False
    label: str = ""
    root_certificates: bytes | None = None
    connect_timeout_sec: float = 30.0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def environment_line(server: str) -> str:
    local = server.split(":")[0] in ("127.0.0.1", "localhost", "::1", "[::1]")
    where = "client and server on this host" if local else f"client on {platform.node()}, server {server}"
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({_cpu_model()}), "
            f"Python {platform.python_version()}; {where}")


async def _worker(index: int, client: SttClient, *, inputs: list[StreamAudio], options: LoadOptions,
                  deadline: float, records: list[StreamRecord], progress: Progress, task: TaskID) -> None:
    # Stagger the starts (within the first quarter of the run, at most 1 s) so the N streams do
    # not speak in lockstep.
    await asyncio.sleep(random.Random(index).uniform(0.0, min(1.0, options.duration_sec / 4)))
    turn = 0
    while turn == 0 or time.monotonic() < deadline:  # every worker runs at least one stream
        audio = inputs[(index + turn) % len(inputs)]
        record = await run_stream(client, audio, realtime=options.realtime, request_id=f"bench-{index}-{turn}")
        records.append(record)
        turn += 1
        progress.update(task, advance=1,
                        errors=sum(1 for r in records if r.error_status))
        if record.error_status and record.retry_after_sec:
            await asyncio.sleep(min(record.retry_after_sec, max(0.0, deadline - time.monotonic())))


def build_report(records: list[StreamRecord], *, options: LoadOptions, info: dict[str, object],
                 resources: ResourceDelta, server_side: dict[str, object], audio_per_stream_sec: float,
                 load_average: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None,
                 ) -> LoadReport:
    """Pure: all figures from the stream records plus what the server said about itself."""
    create = summarize([r.create_session_sec for r in records if r.create_session_sec is not None])
    latencies = [lat for r in records for lat in r.latencies]
    first = summarize([lat.first_partial_sec for lat in latencies if lat.first_partial_sec is not None])
    final = summarize([lat.final_sec for lat in latencies if lat.final_sec is not None])
    missing = sum(1 for lat in latencies if lat.final_sec is None)
    failed = [r for r in records if r.error_status]
    errors = ErrorTally(
        # Each record is one CreateSession plus (when it succeeded) one StreamingRecognize call.
        attempts=len(records) + sum(1 for r in records if r.create_session_sec is not None),
        by_status=dict(Counter(r.error_status for r in failed if r.error_status)),
        by_code=dict(Counter(r.error_code or "none" for r in failed)),
    )
    slo = evaluate(create_session=create, first_partial=first, final=final, errors=errors)
    bottlenecks, mitigations = derive_notes(slo=slo, resources=resources, server_side=server_side,
                                            cpu_count=os.cpu_count(), missing_finals=missing)
    limits = info.get("limits", {})
    return LoadReport(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        environment=environment_line(options.server),
        server_version=str(info.get("version", "unknown")),
        model=str(info.get("model", "unknown")),
        config_limits=dict(limits) if isinstance(limits, dict) else {},
        client_mix=f"{options.sessions} {'realtime' if options.realtime else 'as-fast-as-possible'} "
                   "streaming clients, 0 batch",
        workload=Workload(options.sessions, audio_per_stream_sec, options.input, options.realtime,
                          options.duration_sec, len(records), len(latencies)),
        create_session=create, first_partial=first, final=final, errors=errors, missing_finals=missing,
        resources=resources, slo=slo, server_side=server_side, bottlenecks=bottlenecks,
        mitigations=mitigations, label=options.label,
        spurious_finals=sum(r.spurious_finals for r in records),
        load_average_start=load_average[0] if load_average else None,
        load_average_end=load_average[1] if load_average else None, cpu_count=os.cpu_count(),
    )


async def _server_info(client: SttClient) -> dict[str, object]:
    try:
        info = await client.server_info()
    except SttClientError as exc:
        return {"version": f"unknown ({exc.status.name})"}
    model = info.models[0] if info.models else None
    limits = info.limits
    return {
        "version": info.version,
        "model": f"{model.name} ({model.device}, {model.compute_type})" if model else "unknown",
        "limits": {"max_sessions": limits.max_sessions, "max_decode_pending": limits.max_decode_pending,
                   "max_stream_buffer_bytes": limits.max_stream_buffer_bytes,
                   "max_total_buffer_bytes": limits.max_total_buffer_bytes,
                   "max_sessions_per_api_key": limits.max_sessions_per_api_key},
    }


async def run_load(options: LoadOptions, *, console: Console | None = None,
                   inputs: list[StreamAudio] | None = None) -> LoadReport:
    """Drive the load and build the report; ``inputs`` replaces the synthesized clips (tests)."""
    console = console or Console(stderr=True)
    inputs = inputs or build_inputs(options.input, streams=options.sessions)
    audio_per_stream = sum(a.duration_sec for a in inputs) / len(inputs)
    records: list[StreamRecord] = []
    run_started = time.monotonic()
    load_start = os.getloadavg()
    async with SttClient(options.server, api_key=options.api_key,
                         root_certificates=options.root_certificates) as client:
        await client.wait_ready(timeout=options.connect_timeout_sec)
        info = await _server_info(client)
        probe = ControlProbe(options.http_url, options.token, options.insecure) if options.http_url else None
        async with probe if probe is not None else contextlib.nullcontext():
            before = await probe.read() if probe else None
            watcher = asyncio.create_task(probe.watch_peaks()) if probe else None
            deadline = time.monotonic() + options.duration_sec
            columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed} streams"),
                       TextColumn("{task.fields[errors]} errors"), TimeElapsedColumn())
            with Progress(*columns, console=console, transient=False) as progress:
                task = progress.add_task(f"{options.sessions} x {options.input}", total=None, errors=0)
                try:
                    await asyncio.gather(*[
                        _worker(i, client, inputs=inputs, options=options, deadline=deadline, records=records,
                                progress=progress, task=task)
                        for i in range(options.sessions)
                    ])
                finally:
                    if watcher is not None:
                        watcher.cancel()
                        await asyncio.gather(watcher, return_exceptions=True)
            after = await probe.read() if probe else None
    elapsed = time.monotonic() - run_started
    resources = resource_delta(before, after) if before and after else ResourceDelta(wall_seconds=elapsed)
    server_side = server_side_delta(before, after, peaks=probe.peaks) if before and after and probe else {}
    return build_report(records, options=options, info=info, resources=resources, server_side=server_side,
                        audio_per_stream_sec=audio_per_stream, load_average=(load_start, os.getloadavg()))

