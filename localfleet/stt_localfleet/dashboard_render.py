"""Draw each dashboard row as Grafana would lay it out, from a real Prometheus, to one PNG per row.

Grafana itself cannot run here, so this is the closest look a person gets before installing it:
panels sit where their `gridPos` puts them (24 columns), time series are the panel's queries over
the load window with the panel's legend format and unit, stat panels the last value coloured by
the panel's thresholds. matplotlib is the `plot` extra.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from stt_localfleet.dashboard_queries import Series, grafana_expr, instant, over_range

GRID_COLUMNS: Final = 24
UNIT_HEIGHT_IN: Final = 0.32  # one gridPos height unit (Grafana: 30 px) at this figure's scale
WIDTH_IN: Final = 16.0
BACKGROUND: Final = "#111217"
PANEL: Final = "#181b1f"
TEXT: Final = "#ccccdc"
PALETTE: Final = ("#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0",
                  "#37872d", "#fade2a")
SCALES: Final[Mapping[str, tuple[float, str]]] = {
    "s": (1.0, "s"), "bytes": (1 / 2**20, "MiB"), "percentunit": (100.0, "%"), "percent": (1.0, "%"),
    "reqps": (1.0, "req/s"), "short": (1.0, ""), "d": (1.0, "days"),
}


@dataclass(frozen=True)
class PanelData:
    panel: dict[str, Any]
    series: list[tuple[str, Series]]  # (legend, series)


def rows(dashboard: Mapping[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(row title, its panels) in dashboard order."""
    found: list[tuple[str, list[dict[str, Any]]]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.append((panel["title"], []))
        elif found:
            found[-1][1].append(panel)
    return found


def legend(fmt: str, labels: Mapping[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip() or "value"


async def fetch(http: aiohttp.ClientSession, prometheus_url: str, panel: Mapping[str, Any], *, namespace: str,
                sttserver: str, start: float, end: float) -> PanelData:
    """The panel's series over [start, end] (a stat panel: its instant value at `end`)."""
    found: list[tuple[str, Series]] = []
    for target in panel.get("targets") or ():
        expr = grafana_expr(target["expr"], namespace=namespace, sttserver=sttserver, rate_interval="15s",
                            range_=f"{max(60, round(end - start))}s")
        if panel["type"] == "stat":
            result = await instant(http, prometheus_url, expr, at=end)
        else:
            result = await over_range(http, prometheus_url, expr, start=start, end=end, step=1.0)
        found += [(legend(target.get("legendFormat", ""), s.labels), s) for s in result]
    return PanelData(panel=dict(panel), series=found)


def _color(panel: Mapping[str, Any], value: float) -> str:
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    color = "green"
    for step in steps:
        if step.get("value") is None or value >= step["value"]:
            color = step["color"]
    return {"green": "#73bf69", "red": "#f2495c"}.get(color, color)


def _draw_stat(ax: Any, data: PanelData, scale: float, suffix: str) -> None:
    values = [v for _, s in data.series for _, v in s.points if math.isfinite(v)]
    if not values:
        ax.text(0.5, 0.45, "No data", ha="center", va="center", color="#8e8e8e", fontsize=16)
        return
    value = values[-1]
    shown = value * scale
    text = f"{shown:,.0f}" if abs(shown) >= 1000 else f"{shown:.3g}"
    ax.text(0.5, 0.42, f"{text}{suffix}", ha="center", va="center", fontsize=26, weight="bold",
            color=_color(data.panel, value))


def _draw_series(ax: Any, data: PanelData, scale: float, suffix: str, start: float) -> None:
    limit = data.panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    drawn = 0
    for index, (name, series) in enumerate(data.series):
        points = [(t - start, v * scale) for t, v in series.points if math.isfinite(v)]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, lw=1.2, color=PALETTE[index % len(PALETTE)], label=name[:38])
        drawn += 1
    red = [s["value"] for s in limit if s.get("value") is not None and s.get("color") == "red"]
    if red and data.panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {}).get(
            "thresholdsStyle", {}).get("mode") == "dashed":
        ax.axhline(red[0] * scale, color="#f2495c", lw=1, ls="--")
    if not drawn:
        ax.text(0.5, 0.5, "No data", ha="center", va="center", color="#8e8e8e", fontsize=13, transform=ax.transAxes)
        return
    ax.legend(loc="upper left", fontsize=6.5, frameon=False, labelcolor=TEXT, ncol=2 if drawn > 4 else 1)
    ax.set_ylabel(suffix, color=TEXT, fontsize=7)
    ax.set_xlabel("seconds into the load", color=TEXT, fontsize=7)


def render_row(title: str, panels: Sequence[PanelData], out: Path, *, start: float) -> Path:
    """One PNG for one row, panels placed by their gridPos."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = min(p.panel["gridPos"]["y"] for p in panels)
    height_units = max(p.panel["gridPos"]["y"] + p.panel["gridPos"]["h"] for p in panels) - top
    fig_height = height_units * UNIT_HEIGHT_IN + 0.5
    fig = plt.figure(figsize=(WIDTH_IN, fig_height), facecolor=BACKGROUND)
    fig.suptitle(title, x=0.01, ha="left", color=TEXT, fontsize=12, weight="bold")
    usable = 1 - 0.5 / fig_height
    for data in panels:
        g = data.panel["gridPos"]
        left, width = g["x"] / GRID_COLUMNS, g["w"] / GRID_COLUMNS
        bottom = usable * (1 - (g["y"] - top + g["h"]) / height_units)
        height = usable * g["h"] / height_units
        is_stat = data.panel["type"] == "stat"
        # Room in inches: below for tick and axis labels, above for the panel title.
        below, above = (0.1 if is_stat else 0.5) / fig_height, 0.35 / fig_height
        pad_x = 0.035 / max(1, g["w"] / 8)
        ax = fig.add_axes((left + pad_x, bottom + below, width - 1.6 * pad_x, height - below - above))
        ax.set_facecolor(PANEL)
        ax.set_title(data.panel["title"], color=TEXT, fontsize=9, loc="left")
        scale, suffix = SCALES.get(data.panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"),
                                   (1.0, ""))
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.tick_params(colors=TEXT, labelsize=7)
        if is_stat:
            ax.set_xticks([])
            ax.set_yticks([])
            _draw_stat(ax, data, scale, suffix)
        else:
            ax.grid(color="#2c3235", lw=0.5)
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
            _draw_series(ax, data, scale, suffix, start)
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    path = out / f"{slug}.png"
    fig.savefig(path, dpi=72, facecolor=BACKGROUND)
    plt.close(fig)
    return path
