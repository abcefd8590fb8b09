"""Panel helpers over grafana-foundation-sdk's typed builders, and the selectors every query shares.

Every query selects one SttServer through the dashboard variables: `namespace`, `job` (the
Prometheus job a ServiceMonitor names after the Service, hence after the SttServer) and `pod`.
Panels are described by small records (`Query`) and turned into SDK builders here, so the row
modules read as a list of what is shown, not as builder plumbing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import DataSourceRef, Threshold, ThresholdsMode

DATASOURCE: Final = DataSourceRef(type_val="prometheus", uid="${datasource}")
# One SttServer's pods: what every stt-server series is selected by.
SEL: Final = 'namespace="$namespace", job="$sttserver", pod=~"$pod"'
# The SttServer's own objects, for series that carry no job label (kube-state-metrics, exporters).
KUBE_SEL: Final = 'namespace="$namespace", deployment="$sttserver"'
RATE: Final = "$__rate_interval"
QUANTILES: Final = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Query:
    """One PromQL target and the legend Grafana draws for its series."""

    expr: str
    legend: str


def rate(metric: str, *, by: str = "", extra: str = "") -> str:
    """`sum [by (...)] (rate(metric{SEL, extra}[$__rate_interval]))`."""
    matchers = f"{SEL}, {extra}" if extra else SEL
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{matchers}}}[{RATE}]))"


def quantile(q: float, histogram: str, *, by: str = "", extra: str = "") -> str:
    """The `q` quantile of a histogram's buckets summed over the selected pods."""
    keep = f"{by}, le" if by else "le"
    return f"histogram_quantile({q:g}, {rate(histogram + '_bucket', by=keep, extra=extra)})"


def quantiles(histogram: str, *, extra: str = "", qs: Sequence[float] = QUANTILES) -> list[Query]:
    """P50/P95/P99 of one histogram, one series each."""
    return [Query(quantile(q, histogram, extra=extra), f"P{round(q * 100)}") for q in qs]


def _targets(queries: Sequence[Query], *, instant: bool = False) -> list[prometheus.Dataquery]:
    targets = []
    for index, query in enumerate(queries):
        target = (prometheus.Dataquery().expr(query.expr).legend_format(query.legend)
                  .ref_id(chr(ord("A") + index)).datasource(DATASOURCE))
        targets.append(target.instant() if instant else target.range())
    return targets


def _thresholds(limit: float | None, *, floor: float | None = None) -> dashboard_builders.ThresholdsConfig:
    """Green below `limit` (red above), or with `floor`: red below it, green above."""
    if floor is not None:
        steps = [Threshold(value=None, color="red"), Threshold(value=floor, color="green")]
    else:
        steps = [Threshold(value=None, color="green")]
        if limit is not None:
            steps.append(Threshold(value=limit, color="red"))
    return dashboard_builders.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)


def series(title: str, queries: Sequence[Query], *, unit: str, description: str, width: int = 8,
           height: int = 8, limit: float | None = None, stacked: bool = False) -> timeseries.Panel:
    """A time-series panel; `limit` draws the objective or cap as a dashed red line."""
    panel = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE)
             .targets(list(_targets(queries))).unit(unit).span(width).height(height)
             .line_width(1).fill_opacity(10).show_points(common.VisibilityMode.NEVER)
             .legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                     .placement(common.LegendPlacement.BOTTOM).show_legend(True))
             .thresholds(_thresholds(limit)))
    if limit is not None:
        panel = panel.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


def single(title: str, query: Query, *, unit: str, description: str, width: int = 6, height: int = 4,
           limit: float | None = None, floor: float | None = None, decimals: int | None = None) -> stat.Panel:
    """A stat panel showing the last value of one instant query; red past `limit` (or under `floor`)."""
    panel = (stat.Panel().title(title).description(description).datasource(DATASOURCE)
             .targets(list(_targets([query], instant=True))).unit(unit).span(width).height(height)
             .graph_mode(common.BigValueGraphMode.NONE).color_mode(common.BigValueColorMode.VALUE)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
             .thresholds(_thresholds(limit, floor=floor)))
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel
