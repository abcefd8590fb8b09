"""``stt-bench capacity``: run ``CapacitySearch``'s trials as ``stt-bench load`` runs and report.

Each trial is one load run (N real-time streams for ``--duration`` seconds of stream starts, the
same clips every time); the search decides the next N. Progress is one ``rich`` bar over the time
budget. The report is the search (every trial, both boundaries, the recommendation) followed by
seed 002's Load Test Report of the last run at the P99 boundary, as Markdown and JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from stt_server.bench.capacity import CapacityResult, CapacitySearch, SearchSettings, Trial, trials_table
from stt_server.bench.load import LoadOptions, run_load
from stt_server.bench.report import LoadReport, render_markdown, to_json_dict
from stt_server.bench.slo import EXCLUDED_FROM_AVAILABILITY
from stt_server.bench.workload import StreamAudio

TrialRunner = Callable[[int], Awaitable[Trial]]


def trial_from_report(report: LoadReport, *, wall_seconds: float) -> Trial:
    """The search's view of one load report."""
    return Trial(
        streams=report.workload.concurrent_sessions,
        slo_met=all(result.verdict == "met" for result in report.slo),
        refused=sum(n for status, n in report.errors.by_status.items() if status in EXCLUDED_FROM_AVAILABILITY),
        first_partial_p99=report.first_partial.p99, first_partial_max=report.first_partial.max,
        final_p99=report.final.p99, final_max=report.final.max, missing_finals=report.missing_finals,
        wall_seconds=wall_seconds, cpu_cores_busy=report.resources.cpu_cores_busy,
        load_average=report.load_average_start[0] if report.load_average_start else None)


async def search_capacity(search: CapacitySearch, run_trial: TrialRunner, *,
                          clock: Callable[[], float] = time.monotonic,
                          on_trial: Callable[[int, str], None] | None = None) -> CapacityResult:
    """Ask the search for N, run it, record it, until the search stops (done or out of budget)."""
    started = clock()
    while (streams := search.next_streams(elapsed_sec=clock() - started)) is not None:
        if on_trial is not None:
            on_trial(streams, search.why)
        search.record(await run_trial(streams))
    return search.result()


@dataclass(frozen=True)
class CapacityOptions:
    load: LoadOptions  # sessions is replaced by each trial's N
    settings: SearchSettings


class LoadTrials:
    """Runs trials as ``run_load`` calls on the same clips and keeps each N's latest report."""

    def __init__(self, options: LoadOptions, inputs: list[StreamAudio]) -> None:
        self._options = options
        self._inputs = inputs
        self.reports: dict[int, LoadReport] = {}

    async def __call__(self, streams: int) -> Trial:
        started = time.monotonic()
        options = replace(self._options, sessions=streams, label=f"{self._options.label or 'capacity'}-{streams}")
        report = await run_load(options, console=Console(quiet=True), inputs=self._inputs)
        self.reports[streams] = report
        return trial_from_report(report, wall_seconds=time.monotonic() - started)


async def run_capacity(options: CapacityOptions, *, inputs: list[StreamAudio],
                       console: Console | None = None) -> tuple[CapacityResult, LoadReport | None]:
    """The whole search with a progress bar over the budget; the report at the P99 boundary too."""
    console = console or Console(stderr=True)
    trials = LoadTrials(options.load, inputs)
    search = CapacitySearch(options.settings)
    budget = options.settings.budget_sec
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
               TextColumn("{task.fields[found]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("starting", total=budget, found="")
        started = time.monotonic()

        async def tick() -> None:
            while True:
                progress.update(task, completed=min(budget, time.monotonic() - started))
                await asyncio.sleep(0.5)

        def on_trial(streams: int, why: str) -> None:
            low, _ = search.bounds("p99")
            worst, _ = search.bounds("worst")
            progress.update(task, description=f"{streams} streams ({why})",
                            found=f"holds: P99 {low or '-'}, worst case {worst or '-'}")

        ticker = asyncio.create_task(tick())
        try:
            result = await search_capacity(search, trials, on_trial=on_trial)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        progress.update(task, completed=budget, description="done")
    report = trials.reports.get(result.p99_streams) if result.p99_streams else None
    return result, report


def _streams(value: int | None, confirmed: bool, *, at_max: bool = False) -> str:
    if value is None:
        return "none (not even 1 stream met it)"
    note = " (reached --max-streams; may hold more)" if at_max else ("" if confirmed else " (not confirmed: see below)")
    return f"{value}{note}"


def render_markdown_report(result: CapacityResult, report: LoadReport | None, *, server: str) -> str:
    """The search summary, every trial, then seed 002's Load Test Report at the boundary."""
    rec = result.recommendation
    lines = [
        "# Stream capacity", "",
        (f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; server {server}; {os.cpu_count()} CPUs here, load average "
        f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())} at the end."), "",
        f"- Most streams within seed 002's SLO (P99s): **{_streams(result.p99_streams, result.p99_confirmed, at_max=result.at_max)}**",
        (f"- Most streams with every latency within it (worst case): "
        f"**{_streams(result.worst_streams, result.worst_confirmed)}**"),
        f"- Search ended: {result.stopped}", "",
    ]
    if rec is not None:
        lines += ["## Recommended SttServer settings", "", "```yaml", "spec:", "  limits:",
                  f"    maxSessions: {rec.max_sessions}",
                  "  autoscaling:", "    enabled: true",
                  f"    targetActiveSessionsPerReplica: {rec.target_active_sessions_per_replica}", "```", "",
                  ("`maxSessions` is the P99 capacity (past it the server refuses with ERR1011 rather than "
                  "miss the SLO for everyone); the target is 75% of it, at most the worst-case capacity, "
                  "leaving room for the seconds a new pod needs to become Ready (docs/autoscaling.md)."), ""]
    lines += ["## Trials", "", *trials_table(result.trials), ""]
    if report is not None:
        lines += [f"## Seed 002 report at {result.p99_streams} streams", "",
                  render_markdown(report).replace("# Load Test Report", "### Load Test Report", 1)]
    return "\n".join(lines)


def to_json(result: CapacityResult, report: LoadReport | None, *, server: str) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "server": server,
        "cpu_count": os.cpu_count(), "load_average_end": list(os.getloadavg()),
        "p99_streams": result.p99_streams, "worst_streams": result.worst_streams,
        "p99_confirmed": result.p99_confirmed, "worst_confirmed": result.worst_confirmed,
        "at_max_streams": result.at_max, "stopped": result.stopped,
        "recommendation": asdict(result.recommendation) if result.recommendation else None,
        "trials": [trial.to_dict() for trial in result.trials],
        "report_at_capacity": to_json_dict(report) if report is not None else None,
    }


def write_reports(result: CapacityResult, report: LoadReport | None, *, server: str, out_dir: Path,
                  label: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"capacity-{label or datetime.now(UTC).strftime('%Y%m%d-%H%M')}"
    md, js = stem.with_suffix(".md"), stem.with_suffix(".json")
    md.write_text(render_markdown_report(result, report, server=server))
    js.write_text(json.dumps(to_json(result, report, server=server), indent=2) + "\n")
    return md, js
