"""Seed 002's "Load Test Report", filled in, as Markdown and JSON (pure rendering)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from stt_server.bench.slo import ErrorTally, SloResult
from stt_server.bench.stats import Summary


@dataclass(frozen=True)
class Workload:
    concurrent_sessions: int
    audio_per_stream_sec: float
    input: str                    # speech | silence | noise
    realtime: bool
    duration_sec: float
    streams_started: int
    utterances_sent: int


@dataclass(frozen=True)
class ResourceDelta:
    """Server process figures from ``/system`` before and after the run (``None``: not read)."""

    cpu_seconds: float | None = None
    rss_before_bytes: int | None = None
    rss_after_bytes: int | None = None
    threads_before: int | None = None
    threads_after: int | None = None
    wall_seconds: float | None = None

    @property
    def cpu_cores_busy(self) -> float | None:
        if self.cpu_seconds is None or not self.wall_seconds:
            return None
        return self.cpu_seconds / self.wall_seconds


@dataclass(frozen=True)
class LoadReport:
    date: str
    environment: str
    server_version: str
    model: str
    config_limits: dict[str, Any]
    client_mix: str
    workload: Workload
    create_session: Summary
    first_partial: Summary
    final: Summary
    errors: ErrorTally
    missing_finals: int
    resources: ResourceDelta
    slo: list[SloResult]
    server_side: dict[str, Any] = field(default_factory=dict)  # /metrics.json deltas
    spurious_finals: int = 0  # non-empty finals over no planned speech
    bottlenecks: list[str] = field(default_factory=list)
    mitigations: list[str] = field(default_factory=list)
    label: str = ""
    # os.getloadavg() when the run started and ended, and os.cpu_count(): how busy the host was
    load_average_start: tuple[float, float, float] | None = None
    load_average_end: tuple[float, float, float] | None = None
    cpu_count: int | None = None


def _host_line(report: LoadReport) -> str:
    start, end = report.load_average_start, report.load_average_end
    if start is None or end is None:
        return "n/a"
    return (f"{report.cpu_count} CPUs; load average (1/5/15 min) {start[0]:.2f} / {start[1]:.2f} / {start[2]:.2f} "
            f"at the start, {end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f} at the end")


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1048576:.1f} MiB"


def _resources_line(r: ResourceDelta) -> str:
    if r.rss_before_bytes is None or r.rss_after_bytes is None:
        return "n/a (no --http control plane given)"
    cores = r.cpu_cores_busy
    cpu = "n/a" if r.cpu_seconds is None else f"{r.cpu_seconds:.1f} CPU-s" + (
        f" ({cores:.2f} cores busy on average)" if cores is not None else "")
    rss_delta = r.rss_after_bytes - r.rss_before_bytes
    threads = "n/a"
    if r.threads_before is not None and r.threads_after is not None:
        threads = f"{r.threads_before} -> {r.threads_after} ({r.threads_after - r.threads_before:+d})"
    return (f"CPU {cpu}; RSS {_mib(r.rss_before_bytes)} -> {_mib(r.rss_after_bytes)} "
            f"({rss_delta / 1048576:+.1f} MiB); threads {threads}")


def _errors_line(e: ErrorTally) -> str:
    if not e.failures:
        return f"0 of {e.attempts} calls (0.00%)"
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(e.by_code.items()))
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(e.by_status.items()))
    return (f"{e.failures} of {e.attempts} calls ({e.rate:.2%}); by code: {codes or 'none'}; "
            f"by status: {statuses}; counted against the SLO: {e.availability_rate:.2%}")


def _took(wall_seconds: float | None) -> str:
    return f" (the run took {wall_seconds:.0f} s)" if wall_seconds else ""


def _missing(count: int) -> str:
    return f"; {count} utterance(s) got no final" if count else ""


def _spurious(count: int) -> str:
    return f"; {count} final(s) with text over no planned speech" if count else ""


def _observed(result: SloResult) -> str:
    if result.observed is None:
        return "no data"
    if result.unit == "ratio":
        return f"{result.observed:.2%}"
    return f"{result.observed:.3f} s"


def _target(result: SloResult) -> str:
    return f"<= {result.target:.1%}" if result.unit == "ratio" else f"<= {result.target:g} s"


def render_markdown(report: LoadReport) -> str:
    """The seed template with every field filled, plus an SLO verdict table."""
    w = report.workload
    limits = ", ".join(f"{k}={v}" for k, v in report.config_limits.items()) or "n/a"
    lines = [
        f"# Load Test Report{f': {report.label}' if report.label else ''}",
        "",
        f"Date: {report.date}",
        f"Environment: {report.environment}",
        f"Host load: {_host_line(report)}",
        f"Server Version: {report.server_version}",
        f"Model: {report.model}",
        f"Config (key limits): {limits}",
        f"Client Mix (realtime/batch): {report.client_mix}",
        "",
        "## Workload",
        "",
        f"- Concurrent sessions: {w.concurrent_sessions}",
        (f"- Audio duration per session: {w.audio_per_stream_sec:.1f} s per stream "
         f"({w.streams_started} streams, {w.utterances_sent} utterances)"),
        f"- Input type: {w.input}",
        f"- Client pacing: {'realtime' if w.realtime else 'no-realtime'}",
        f"- Duration: {w.duration_sec:.0f} s of stream starts{_took(report.resources.wall_seconds)}",
        "",
        "## Results",
        "",
        f"- CreateSession P50/P90/P99: {report.create_session.triple(unit_ms=True)}",
        f"- First partial P50/P90/P99: {report.first_partial.triple()}",
        (f"- Final result P50/P90/P99: {report.final.triple()}{_missing(report.missing_finals)}"
         f"{_spurious(report.spurious_finals)}"),
        f"- Error rate (by code): {_errors_line(report.errors)}",
        f"- CPU/RSS/threads delta: {_resources_line(report.resources)}",
        "",
        "## SLO (seed 002)",
        "",
        "| objective | target | observed | verdict |",
        "|---|---|---|---|",
        *[f"| {r.description} | {_target(r)} | {_observed(r)} | **{r.verdict}** |" for r in report.slo],
        "",
    ]
    if report.server_side:
        lines += ["## Server side (from /metrics.json, change over the run)", ""]
        lines += [f"- {key}: {value}" for key, value in report.server_side.items()]
        lines.append("")
    lines += [
        "## Notes",
        "",
        f"- Bottlenecks observed: {'; '.join(report.bottlenecks) or 'none observed'}",
        f"- Mitigations: {'; '.join(report.mitigations) or 'none needed'}",
        "",
    ]
    return "\n".join(lines)


def to_json_dict(report: LoadReport) -> dict[str, Any]:
    """The same report as plain JSON types (stable keys for scripts and dashboards)."""
    w = report.workload
    r = report.resources
    return {
        "label": report.label,
        "date": report.date,
        "environment": report.environment,
        "server_version": report.server_version,
        "model": report.model,
        "config_limits": report.config_limits,
        "client_mix": report.client_mix,
        "host": {"cpu_count": report.cpu_count,
                 "load_average_start": list(report.load_average_start) if report.load_average_start else None,
                 "load_average_end": list(report.load_average_end) if report.load_average_end else None},
        "workload": {
            "concurrent_sessions": w.concurrent_sessions, "audio_per_stream_sec": w.audio_per_stream_sec,
            "input": w.input, "realtime": w.realtime, "duration_sec": w.duration_sec,
            "streams_started": w.streams_started, "utterances_sent": w.utterances_sent,
        },
        "results": {
            "create_session_sec": report.create_session.to_dict(),
            "first_partial_sec": report.first_partial.to_dict(),
            "final_sec": report.final.to_dict(),
            "missing_finals": report.missing_finals,
            "spurious_finals": report.spurious_finals,
            "errors": {"attempts": report.errors.attempts, "failures": report.errors.failures,
                       "rate": report.errors.rate, "availability_rate": report.errors.availability_rate,
                       "by_status": dict(report.errors.by_status), "by_code": dict(report.errors.by_code)},
            "resources": {"cpu_seconds": r.cpu_seconds, "cpu_cores_busy": r.cpu_cores_busy,
                          "rss_before_bytes": r.rss_before_bytes, "rss_after_bytes": r.rss_after_bytes,
                          "threads_before": r.threads_before, "threads_after": r.threads_after,
                          "wall_seconds": r.wall_seconds},
        },
        "slo": [result.to_dict() for result in report.slo],
        "server_side": report.server_side,
        "notes": {"bottlenecks": report.bottlenecks, "mitigations": report.mitigations},
    }


def render_json(report: LoadReport) -> str:
    return json.dumps(to_json_dict(report), indent=2, sort_keys=False) + "\n"
