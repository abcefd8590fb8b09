"""Run the dashboard's panel queries against a Prometheus the way Grafana would send them.

Grafana replaces the variables before it sends a query; `grafana_expr` does the same for one
SttServer with all of its pods selected (`$pod` = All = `.*`), `$__rate_interval` and `$__range`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

ALL_PODS: Final = ".*"


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix time, value)

    @property
    def finite(self) -> bool:
        return any(math.isfinite(v) for _, v in self.points)


def grafana_expr(expr: str, *, namespace: str, sttserver: str, rate_interval: str, range_: str) -> str:
    """`expr` with the dashboard variables replaced as Grafana replaces them."""
    for name, value in (("$__rate_interval", rate_interval), ("$__range", range_), ("$namespace", namespace),
                        ("$sttserver", sttserver), ("$pod", ALL_PODS)):
        expr = expr.replace(name, value)
    return expr


def _series(result: list[dict[str, Any]]) -> list[Series]:
    found = []
    for item in result:
        raw = item.get("values") or ([item["value"]] if "value" in item else [])
        found.append(Series(labels=dict(item["metric"]), points=[(float(t), float(v)) for t, v in raw]))
    return found


async def instant(http: aiohttp.ClientSession, prometheus_url: str, expr: str, *, at: float) -> list[Series]:
    async with http.get(f"{prometheus_url}/api/v1/query", params={"query": expr, "time": f"{at:.3f}"}) as response:
        body = await response.json()
    if body.get("status") != "success":
        raise ValueError(f"{expr}: {body.get('error')}")
    return _series(body["data"]["result"])


async def over_range(http: aiohttp.ClientSession, prometheus_url: str, expr: str, *, start: float, end: float,
                     step: float) -> list[Series]:
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    async with http.get(f"{prometheus_url}/api/v1/query_range", params=params) as response:
        body = await response.json()
    if body.get("status") != "success":
        raise ValueError(f"{expr}: {body.get('error')}")
    return _series(body["data"]["result"])
