"""Side-by-side table of the before/after load runs written by scripts/run-capacity-benchmarks.sh.

Reads ``load-<side>-<N>-streams-r<round>.json`` (stt-bench load's seed 002 reports) and writes
``<out>.md`` and ``<out>.json``: per run, and per side and stream count the worst P99 and worst
single latency over the rounds, each with the host's load average around the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

RUN_NAME: Final = re.compile(r"load-(?P<side>before|after)-(?P<n>\d+)-streams-r(?P<round>\d+)\.json$")
FIRST_PARTIAL_P99: Final = 2.5
FINAL_P99: Final = 5.0


def run_row(path: Path) -> dict[str, Any] | None:
    match = RUN_NAME.search(path.name)
    if match is None:
        return None
    report = json.loads(path.read_text())
    results = report["results"]
    first, final = results["first_partial_sec"], results["final_sec"]
    server = report.get("server_side", {})
    host = report.get("host", {})
    return {
        "side": match["side"], "streams": int(match["n"]), "round": int(match["round"]), "date": report["date"],
        "first_partial_p50": first["p50"], "first_partial_p99": first["p99"], "first_partial_max": first["max"],
        "final_p50": final["p50"], "final_p99": final["p99"], "final_max": final["max"],
        "missing_finals": results["missing_finals"], "errors": results["errors"]["failures"],
        "server_cores_busy": results["resources"]["cpu_cores_busy"],
        "partial_drops": server.get("partial_drop_count"), "decodes": server.get("decodes"),
        "load_average_start": host.get("load_average_start"), "load_average_end": host.get("load_average_end"),
        "slo_met": all(s["verdict"] != "missed" for s in report["slo"]),
    }


def _worst(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return max(values) if values else None


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (streams, side): worst P99 and worst single latency over the rounds."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["streams"], row["side"])].append(row)
    out = []
    for (streams, side), group in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] != "before")):
        first_p99, final_p99 = _worst(group, "first_partial_p99"), _worst(group, "final_p99")
        first_max = _worst(group, "first_partial_max")
        out.append({
            "streams": streams, "side": side, "rounds": len(group),
            "first_partial_p99_median": _median([r["first_partial_p99"] for r in group]),
            "final_p99_median": _median([r["final_p99"] for r in group]),
            "first_partial_p99_worst": first_p99, "first_partial_max": first_max,
            "final_p99_worst": final_p99, "final_max": _worst(group, "final_max"),
            "server_cores_busy_mean": _mean([r["server_cores_busy"] for r in group]),
            "partial_drops": sum(r["partial_drops"] or 0 for r in group),
            "slo_p99_met": bool(first_p99 is not None and final_p99 is not None
                                and first_p99 <= FIRST_PARTIAL_P99 and final_p99 <= FINAL_P99
                                and all(r["slo_met"] for r in group)),
            "slo_worst_case_met": bool(first_max is not None and first_max <= FIRST_PARTIAL_P99
                                       and (_worst(group, "final_max") or 0.0) <= FINAL_P99),
            "load_average_1min": [r["load_average_start"][0] for r in group if r["load_average_start"]],
        })
    return out


def _median(values: list[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    middle = len(present) // 2
    return present[middle] if len(present) % 2 else (present[middle - 1] + present[middle]) / 2


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render(summary: list[dict[str, Any]], rows: list[dict[str, Any]], *, before: str, after: str) -> str:
    lines = [
        "# Stream capacity, before and after (side by side)", "",
        (f"Written {datetime.now(UTC):%Y-%m-%d %H:%M UTC} by `scripts/run-capacity-benchmarks.sh`; before = `{before}`, "
        f"after = `{after}`. {os.cpu_count()} CPUs shared by the client and both servers; the runs alternate "
        "which side goes first. Latencies in seconds; the P99 SLO verdict needs every run's P99s within it."), "",
        ("| streams | side | first partial P99 (median / worst run) | first partial max "
         "| final P99 (median / worst run) | final max | server cores busy | partial drops | P99 SLO "
         "| worst case within SLO | load avg (1 min) at each run's start |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        loads = ", ".join(f"{v:.1f}" for v in s["load_average_1min"]) or "n/a"
        lines.append(
            f"| {s['streams']} | {s['side']} | {_s(s['first_partial_p99_median'])} / "
            f"{_s(s['first_partial_p99_worst'])} | {_s(s['first_partial_max'])} | {_s(s['final_p99_median'])} / "
            f"{_s(s['final_p99_worst'])} | {_s(s['final_max'])} | {_s(s['server_cores_busy_mean'])} | "
            f"{s['partial_drops']} | {'met' if s['slo_p99_met'] else 'missed'} | "
            f"{'yes' if s['slo_worst_case_met'] else 'no'} | {loads} |")
    lines += ["", "## Every run", "",
              ("| streams | side | round | first partial P50 / P99 / max | final P50 / P99 / max | cores | drops "
              "| load avg start -> end |"), "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["streams"], r["round"], r["date"])):
        start, end = r["load_average_start"], r["load_average_end"]
        load = f"{start[0]:.1f} -> {end[0]:.1f}" if start and end else "n/a"
        lines.append(
            f"| {r['streams']} | {r['side']} | {r['round']} | {_s(r['first_partial_p50'])} / "
            f"{_s(r['first_partial_p99'])} / {_s(r['first_partial_max'])} | {_s(r['final_p50'])} / "
            f"{_s(r['final_p99'])} / {_s(r['final_max'])} | {_s(r['server_cores_busy'])} | {r['partial_drops']} | "
            f"{load} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--before-ref", required=True)
    parser.add_argument("--after-ref", required=True)
    parser.add_argument("--out", type=Path, required=True, help="path without suffix")
    args = parser.parse_args()
    rows = [row for path in sorted(args.runs.glob("load-*.json")) if (row := run_row(path)) is not None]
    summary = summarize(rows)
    args.out.with_suffix(".md").write_text(render(summary, rows, before=args.before_ref, after=args.after_ref))
    args.out.with_suffix(".json").write_text(json.dumps({
        "before_ref": args.before_ref, "after_ref": args.after_ref, "cpu_count": os.cpu_count(),
        "load_average_at_write": list(os.getloadavg()), "summary": summary, "runs": rows}, indent=2) + "\n")
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
