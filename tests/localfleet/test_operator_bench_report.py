"""The operator benchmark's report: percentiles, and a `floor` run (no operator) shown without operator costs."""

from __future__ import annotations

import json
from pathlib import Path

from stt_localfleet.operator_bench_report import RunResult, percentile, write_report


def run(variant: str, latencies: tuple[float, ...], *, operator_ran: bool = True) -> RunResult:
    return RunResult(variant=variant, code="working tree", count=len(latencies), latencies_sec=latencies, missing=0,
                     apply_cpu_sec=1.25, idle_cpu_percent=0.1, steady_cpu_percent=0.6, steady_window_sec=45,
                     rss_mb_end=93.4, rss_mb_max=95.0, loadavg_before=(0.5, 0.4, 0.3),
                     loadavg_after=(1.5, 0.9, 0.4), operator_ran=operator_ran)


def test_nearest_rank_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile([3.0], 99) == 3.0


def test_a_floor_run_reports_latency_but_no_operator_costs(tmp_path: Path) -> None:
    md = write_report([run("after", (0.5, 2.0)), run("floor", (0.25, 0.75), operator_ran=False)],
                      out_dir=tmp_path, label="t", setup={"date": "today"})
    rows = [line for line in md.read_text().splitlines() if line.startswith(("| after", "| floor"))]
    assert "93 / 95 MB" in rows[0] and "0.6 % of one core" in rows[0]
    assert "| 0.25 / 0.75 / 0.75 s |" in rows[1] and "no operator" in rows[1] and "MB" not in rows[1]
    saved = json.loads((tmp_path / "operator-t.json").read_text())
    assert [r["operator_ran"] for r in saved["runs"]] == [True, False]
