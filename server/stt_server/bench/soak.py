"""``python -m stt_server.bench.soak``: a long run at max_sessions with valid and hostile traffic.

Starts one ``stt-server`` process (the bundled tiny.en on CPU) with ``limits.max_sessions`` set to
``--sessions``, then for ``--duration`` seconds keeps ``sessions - 1`` real-time speech streams
running, uses the last slot for hostile streams (corrupt messages, bad configs, odd byte counts,
clients that vanish), sends malformed unary calls, junk HTTP and junk bytes to both ports, and every
few seconds opens two more streams at once, so the server is at max_sessions and refuses (ERR1011). Every answer is checked against the codes that input may
get; anything else (UNKNOWN, INTERNAL, a wrong code) is an unexpected outcome. Every
``--sample-sec`` the server's RSS (``/proc/<pid>/status``) and its ``/metrics.json`` gauges are
recorded. At the end the server is drained with SIGTERM and its stderr checked to be JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import aiohttp
import grpc

from stt_server.bench.soak_inputs import HOSTILE_CASES, HostileCase, Outcome
from stt_server.bench.workload import StreamAudio, speech_variants
from stt_server.client import SttClient, SttClientError, WavAudio

OK: Final = "OK"
# answers a valid stream may get on a full, busy server: a refusal with a retry hint
VALID_STREAM_CODES: Final = frozenset({OK, "ERR1011", "ERR1013", "ERR1014", "ERR1015", "ERR1016"})
OVERFLOW_CODES: Final = frozenset({OK, "ERR1011"})


@dataclass
class Tally:
    """Answers per traffic kind, and the ones no input of that kind may get."""

    answers: dict[str, Counter[str]] = field(default_factory=dict)
    unexpected: list[dict[str, str]] = field(default_factory=list)

    def add(self, kind: str, answer: str, allowed: frozenset[str], detail: str = "") -> None:
        self.answers.setdefault(kind, Counter())[answer] += 1
        if answer not in allowed and len(self.unexpected) < 200:
            self.unexpected.append({"kind": kind, "answer": answer, "detail": detail[:200]})


def rss_growth(samples: list[dict[str, Any]], *, warmup_sec: float, window_sec: float = 300.0) -> dict[str, Any]:
    """RSS growth after warm-up, two ways.

    ``growth_pct`` (the target): the median of the first ``window_sec`` after warm-up against the
    median of the last ``window_sec``. RSS is a saw-tooth (the server trims its heap every minute,
    decodes come and go), so one sample at each end can read 30 MB high or low; a median of 30 does
    not. ``single_sample_growth_pct``: the first sample after warm-up against the mean of the last
    three, as the first reports measured. ``window_medians_mb``: each window's median, to show a
    plateau; ``slope_mb_per_hour``: the least-squares fit over every sample after warm-up.
    """
    after = [s for s in samples if s["t_sec"] >= warmup_sec and s.get("rss_mb") is not None]
    if len(after) < 2:
        return {"warmup_sec": warmup_sec, "samples_after_warmup": len(after), "growth_pct": None}
    base = after[0]["rss_mb"]
    tail = [s["rss_mb"] for s in after[-3:]]
    end = sum(tail) / len(tail)
    start_t, end_t = after[0]["t_sec"], after[-1]["t_sec"]
    first = statistics.median(s["rss_mb"] for s in after if s["t_sec"] < start_t + window_sec)
    last = statistics.median(s["rss_mb"] for s in after if s["t_sec"] > end_t - window_sec)
    windows = [[s["rss_mb"] for s in after if lo <= s["t_sec"] < lo + window_sec]
               for lo in _frange(start_t, end_t, window_sec)]
    mean_t = statistics.fmean(s["t_sec"] for s in after)
    mean_rss = statistics.fmean(s["rss_mb"] for s in after)
    spread = sum((s["t_sec"] - mean_t) ** 2 for s in after)
    slope = sum((s["t_sec"] - mean_t) * (s["rss_mb"] - mean_rss) for s in after) / spread if spread else 0.0
    return {
        "warmup_sec": warmup_sec, "window_sec": window_sec, "samples_after_warmup": len(after),
        "rss_at_warmup_mb": round(base, 1), "rss_end_mb": round(end, 1),
        "rss_max_after_warmup_mb": round(max(s["rss_mb"] for s in after), 1),
        "median_first_window_mb": round(first, 1), "median_last_window_mb": round(last, 1),
        "window_medians_mb": [round(statistics.median(w), 1) for w in windows if w],
        "slope_mb_per_hour": round(slope * 3600, 1),
        "growth_pct": round(100.0 * (last - first) / first, 2),
        "single_sample_growth_pct": round(100.0 * (end - base) / base, 2),
    }


def _frange(start: float, stop: float, step: float) -> list[float]:
    count = int((stop - start) // step) + 1
    return [start + i * step for i in range(count)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def stream_answer(client: SttClient, audio: WavAudio, *, use_session: bool) -> tuple[str, str, float | None]:
    """One real-time stream: ``(answer, message, retry hint)``; a refused CreateSession is an answer too."""
    try:
        outcome = await client.stream(audio, realtime=True, use_session=use_session)
    except SttClientError as exc:
        return exc.error_code or exc.status.name, exc.message, exc.retry_after_sec
    if outcome.error is None:
        return OK, "", None
    error = outcome.error
    return error.error_code or error.status.name, error.message, error.retry_after_sec


class Soak:
    """One soak run against one server process."""

    def __init__(self, *, target: str, http: str, sessions: int, deadline: float, clips: list[StreamAudio],
                 seed: int) -> None:
        self.target, self.http, self.sessions, self.deadline = target, http, sessions, deadline
        self.clips = clips
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.streams_completed = 0

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    async def valid_worker(self, index: int) -> None:
        """Real-time speech streams back to back; a refusal waits its retry hint."""
        async with SttClient(self.target) as client:
            while self.running():
                clip = self.clips[(index + self.streams_completed) % len(self.clips)]
                answer, message, retry = await stream_answer(client, WavAudio(clip.pcm, 16000),
                                                             use_session=index % 2 == 0)
                self.tally.add("valid_stream", answer, VALID_STREAM_CODES, message)
                if answer == OK:
                    self.streams_completed += 1
                else:
                    await asyncio.sleep(retry or 1.0)

    async def hostile_worker(self) -> None:
        """The last session slot: one hostile case after another, about one a second."""
        async with grpc.aio.insecure_channel(self.target) as channel:
            while self.running():
                case: HostileCase = self.rng.choice(HOSTILE_CASES)
                try:
                    outcome: Outcome = await asyncio.wait_for(
                        case.run(channel=channel, http=self.http, target=self.target, rng=self.rng), timeout=60)
                except TimeoutError:
                    outcome = Outcome("HANG", "no answer within 60 s")
                except (ConnectionError, OSError) as exc:  # the server hung up: fine for junk, recorded
                    outcome = Outcome("closed", type(exc).__name__)
                self.tally.add(case.name, outcome.answer, case.allowed, outcome.detail)
                await asyncio.sleep(0.5 + self.rng.random())

    async def overflow_worker(self) -> None:
        """Every few seconds two more streams at once, so the server reaches max_sessions and refuses (ERR1011)."""
        async with SttClient(self.target) as client:
            while self.running():
                await asyncio.sleep(3.0)
                audio = WavAudio(self.clips[0].pcm[:32000], 16000)
                outcomes = await asyncio.gather(*(stream_answer(client, audio, use_session=True) for _ in range(2)))
                for answer, message, _retry in outcomes:
                    self.tally.add("one_session_too_many", answer, OVERFLOW_CODES, message)


async def _sample(pid: int, http: str, started: float, samples: list[dict[str, Any]]) -> None:
    metrics: dict[str, Any] = {}
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
                session.get(f"{http}/metrics.json") as reply:
            metrics = (await reply.json()).get("metrics", {})
    samples.append({
        "t_sec": round(time.monotonic() - started, 1), "rss_mb": _rss_mb(pid), "loadavg_1m": os.getloadavg()[0],
        "active_sessions": metrics.get("active_sessions"), "active_streams": metrics.get("active_streams"),
        "buffer_bytes_total": metrics.get("buffer_bytes_total"), "decode_pending": metrics.get("decode_pending"),
    })


async def _sampler(pid: int, http: str, started: float, every: float, samples: list[dict[str, Any]],
                   running: Callable[[], bool]) -> None:
    while running():
        await _sample(pid, http, started, samples)
        await asyncio.sleep(every)


async def _wait_ready(http: str, process: asyncio.subprocess.Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"stt-server exited with {process.returncode} while starting")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{http}/health/ready") as reply:
                    if reply.status == 200:
                        return
            await asyncio.sleep(0.5)
    raise RuntimeError("stt-server did not become ready")


async def _metrics_json(http: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
            session.get(f"{http}/metrics.json") as reply:
        body: dict[str, Any] = (await reply.json()).get("metrics", {})
        return body


async def _settled(http: str, timeout: float = 60.0) -> dict[str, Any]:
    """``/metrics.json`` once sessions, streams and buffers are back to zero (or the last try)."""
    deadline = time.monotonic() + timeout
    while True:
        body = await _metrics_json(http)
        zero = not body.get("active_sessions") and not body.get("active_streams") and not body.get(
            "buffer_bytes_total")
        if zero or time.monotonic() > deadline:
            return body
        await asyncio.sleep(1.0)


async def run(args: argparse.Namespace, *, log_file: IO[bytes]) -> dict[str, Any]:
    """Start the server (its output to ``log_file``), run the soak, drain the server; the report."""
    grpc_port, http_port = _free_port(), _free_port()
    env = {**os.environ, "STT_LIMITS__MAX_SESSIONS": str(args.sessions), "STT_LOGGING__FORMAT": "json",
           "STT_LIMITS__REQUESTS_PER_MINUTE_PER_API_KEY": "100000", "STT_SERVER__DRAIN_GRACE_SEC": "10",
           "STT_SERVER__REST_PORT": "0", **dict(pair.split("=", 1) for pair in args.server_env)}
    http = f"http://127.0.0.1:{http_port}"
    target = f"127.0.0.1:{grpc_port}"
    clips = speech_variants(streams=max(1, args.sessions - 1))
    load_start = os.getloadavg()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stt_server.cli", "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
        "--http-host", "127.0.0.1", "--http-port", str(http_port), "--rest-port", "0", "--device", "cpu",
        env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        await _wait_ready(http, process, timeout=300)
        started = time.monotonic()
        soak = Soak(target=target, http=http, sessions=args.sessions, deadline=started + args.duration,
                    clips=clips, seed=args.seed)
        samples: list[dict[str, Any]] = []
        workers: list[Awaitable[None]] = [soak.valid_worker(i) for i in range(max(1, args.sessions - 1))]
        workers += [soak.hostile_worker(), soak.overflow_worker(),
                    _sampler(process.pid, http, started, args.sample_sec, samples, soak.running)]
        await asyncio.gather(*workers)
        await _sample(process.pid, http, started, samples)
        settled = await _settled(http)
        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), timeout=120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return {
        "kind": "soak",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_sec": args.duration, "max_sessions": args.sessions, "valid_stream_workers": max(1, args.sessions - 1),
        "sample_sec": args.sample_sec, "seed": args.seed, "server_env": args.server_env,
        "cpu_count": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "streams_completed": soak.streams_completed,
        "answers": {kind: dict(counter) for kind, counter in sorted(soak.tally.answers.items())},
        "allowed": {case.name: sorted(case.allowed) for case in HOSTILE_CASES}
        | {"valid_stream": sorted(VALID_STREAM_CODES), "one_session_too_many": sorted(OVERFLOW_CODES)},
        "unexpected": soak.tally.unexpected,
        "server_error_counts": settled.get("error_counts", {}),
        "settled": {key: settled.get(key) for key in ("active_sessions", "active_streams", "buffer_bytes_total",
                                                      "decode_pending")},
        "server_exit_code": exit_code,
        "rss": rss_growth(samples, warmup_sec=args.warmup_sec),
        "samples": samples,
    }


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds of traffic (default 1800)")
    parser.add_argument("--sessions", type=int, default=4, help="limits.max_sessions of the server (default 4)")
    parser.add_argument("--sample-sec", type=float, default=10.0, help="RSS sampling interval")
    parser.add_argument("--warmup-sec", type=float, default=300.0, help="RSS growth is measured after this")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the server process, e.g. MALLOC_ARENA_MAX=2 (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="JSON report path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryFile(prefix="stt-soak-server-") as log_file:
        report = asyncio.run(run(args, log_file=log_file))
        log_file.seek(0)
        lines = log_file.read().decode(errors="replace").splitlines()
    non_json = [line for line in lines if not _is_json(line)]
    report["server_log_lines"] = len(lines)
    report["server_log_non_json_lines"] = non_json[:20]
    report["server_log_non_json_count"] = len(non_json)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    growth = report["rss"].get("growth_pct")
    ok = (not report["unexpected"] and report["server_exit_code"] == 0 and not report["server_log_non_json_lines"]
          and (growth is None or growth <= 5.0))
    print(json.dumps({k: report[k] for k in ("answers", "unexpected", "rss", "settled", "server_exit_code")},
                     indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
