"""The operator benchmark's report: runs as records, figures as JSON and a Markdown table.

Pure: `operator_bench` measures and hands over `RunResult`s; this module only summarizes and
renders them, so the numbers in the Markdown are the numbers in the JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunResult:
    """One operator build (`variant`) managing `count` SttServers applied at once."""

    variant: str
    code: str  # where the operator's code came from (a commit, "working tree")
    count: int
    latencies_sec: tuple[float, ...]  # per SttServer: its POST answered -> its last child's ADDED event
    missing: int  # SttServers whose children were not all there by the deadline
    apply_cpu_sec: float  # the operator's CPU from the apply until every child was present
    idle_cpu_percent: float  # the operator's CPU, % of one core, before anything was applied
    steady_cpu_percent: float  # the operator's CPU, % of one core, over the steady-state window
    steady_window_sec: float
    rss_mb_end: float
    rss_mb_max: float
    loadavg_before: tuple[float, float, float]
    loadavg_after: tuple[float, float, float]
    threads: int = 0  # the operator's, at the end of the steady window
    tcp_connections: int = 0  # its open TCP connections then (each TLS connection holds buffers)
    notes: tuple[str, ...] = field(default_factory=tuple)
    operator_ran: bool = True  # False for the `floor` variant: the client made the children, no operator ran


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of `values`; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(run: RunResult) -> dict[str, Any]:
    """The figures a reader compares, rounded for people."""
    lat = run.latencies_sec
    return {
        "variant": run.variant, "count": run.count,
        "apply_to_children_p50_sec": round(percentile(lat, 50), 3),
        "apply_to_children_p99_sec": round(percentile(lat, 99), 3),
        "apply_to_children_max_sec": round(max(lat), 3) if lat else math.nan,
        "missing": run.missing,
        "apply_cpu_sec": round(run.apply_cpu_sec, 2),
        "idle_cpu_percent": round(run.idle_cpu_percent, 2),
        "steady_cpu_percent": round(run.steady_cpu_percent, 2),
        "rss_mb_end": round(run.rss_mb_end, 1), "rss_mb_max": round(run.rss_mb_max, 1),
        "threads": run.threads, "tcp_connections": run.tcp_connections,
        "loadavg_before": [round(x, 2) for x in run.loadavg_before],
        "loadavg_after": [round(x, 2) for x in run.loadavg_after],
    }


def write_report(runs: Sequence[RunResult], *, out_dir: Path, label: str, setup: Mapping[str, Any]) -> Path:
    """Write `operator-<label>.json` (every latency) and `operator-<label>.md`; returns the Markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {"setup": dict(setup), "summary": [summary(r) for r in runs], "runs": [asdict(r) for r in runs]}
    (out_dir / f"operator-{label}.json").write_text(json.dumps(document, indent=2) + "\n")
    md = out_dir / f"operator-{label}.md"
    md.write_text(render_markdown(runs, setup=setup))
    return md


def render_markdown(runs: Sequence[RunResult], *, setup: Mapping[str, Any]) -> str:
    lines = [
        f"# Operator latency and cost: {', '.join(str(c) for c in sorted({r.count for r in runs}))} SttServers",
        "",
        (f"Written by `scripts/bench-operator.sh` on {setup.get('date', '?')}: {setup.get('cpu_count', '?')} CPUs, "
        f"load average {setup.get('loadavg_start', '?')} at the start and {setup.get('loadavg_end', '?')} at the end "
        "(the machine is shared: the CPU figures are the operator process's own CPU time, not wall time)."),
        "",
        ("| operator | SttServers | apply -> all children P50 / P99 / max | not done | operator CPU for the burst "
        "| idle CPU | steady-state CPU | RSS end / max | load avg (1 min) before -> after |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        s = summary(run)
        costs = (f"{s['apply_cpu_sec']:.1f} s | {s['idle_cpu_percent']:.1f} % | {s['steady_cpu_percent']:.1f} % "
                 f"of one core | {s['rss_mb_end']:.0f} / {s['rss_mb_max']:.0f} MB") if run.operator_ran else \
            "no operator | - | - | -"
        lines.append(
            f"| {run.variant} (`{run.code}`) | {run.count} | {s['apply_to_children_p50_sec']:.2f} / "
            f"{s['apply_to_children_p99_sec']:.2f} / {s['apply_to_children_max_sec']:.2f} s | {run.missing} "
            f"| {costs} | {run.loadavg_before[0]:.2f} -> {run.loadavg_after[0]:.2f} |")
    lines += ["", "## Setup", ""]
    lines += [f"- **{key}**: {value}" for key, value in setup.items() if key not in ("date",)]
    notes = [f"- {run.variant} at {run.count}: {note}" for run in runs for note in run.notes]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"
