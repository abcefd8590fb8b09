"""Plot a capture: ``python -m stt_server.tools.plot_metrics m.jsonl --relative --output m.png``.

Draws the backpressure checklist's series (sessions, pending decodes, buffer bytes, RSS, CPU,
partial drops) against time, one panel each, into a PNG (matplotlib, no display needed).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Final

from stt_server.tools.snapshot import flatten

# (panel title, flattened key) — keys as written by metrics_capture.
SERIES: Final = (
    ("active sessions", "metrics.metrics.active_sessions"),
    ("decode pending", "metrics.metrics.decode_pending"),
    ("buffer bytes total", "metrics.metrics.buffer_bytes_total"),
    ("partial drops", "metrics.metrics.partial_drop_count"),
    ("process RSS (bytes)", "system.process.rss_bytes"),
    ("process CPU %", "system.process.cpu_percent"),
)


def load_rows(path: Path) -> list[dict[str, float | str | None]]:
    """Flattened rows from a ``.jsonl`` or ``.csv`` capture."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as stream:
            return [dict(row) for row in csv.DictReader(stream)]
    with path.open() as stream:
        return [flatten(json.loads(line)) for line in stream if line.strip()]


def _number(value: float | str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def series(rows: list[dict[str, float | str | None]], key: str, *, relative: bool) -> tuple[list[float], list[float]]:
    """Times and values of one key; rows without the key are skipped."""
    start = (_number(rows[0].get("ts")) or 0.0) if rows else 0.0
    xs, ys = [], []
    for row in rows:
        t, v = _number(row.get("ts")), _number(row.get(key))
        if t is not None and v is not None:
            xs.append(t - start if relative else t)
            ys.append(v)
    return xs, ys


def plot(rows: list[dict[str, float | str | None]], output: Path, *, relative: bool) -> int:
    """Write the PNG; returns how many panels had data."""
    import matplotlib

    matplotlib.use("Agg")  # files only: works on headless servers and in CI
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(SERIES), 1, figsize=(10, 2.2 * len(SERIES)), sharex=True)
    drawn = 0
    for ax, (title, key) in zip(axes, SERIES, strict=True):
        xs, ys = series(rows, key, relative=relative)
        if xs:
            ax.plot(xs, ys, marker=".", linewidth=1)
            drawn += 1
        ax.set_title(title, fontsize=9, loc="left")
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("seconds since start" if relative else "unix time (s)")
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return drawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Plot a metrics_capture file to a PNG.")
    parser.add_argument("capture", type=Path, help="*.jsonl or *.csv from metrics_capture")
    parser.add_argument("--output", type=Path, default=Path("metrics.png"))
    parser.add_argument("--relative", action="store_true", help="x axis in seconds since the first sample")
    args = parser.parse_args(argv)
    try:
        rows = load_rows(args.capture)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"error: cannot read {args.capture}: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(f"error: {args.capture} holds no snapshots", file=sys.stderr)
        return 2
    drawn = plot(rows, args.output, relative=args.relative)
    print(f"wrote {args.output} ({drawn} of {len(SERIES)} panels with data, {len(rows)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
