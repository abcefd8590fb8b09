"""Percentiles and summaries of latency samples (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks.

    Same definition as ``numpy.percentile``'s default, so numbers agree with notebooks; raises
    ``ValueError`` on an empty sample rather than inventing a value.
    """
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """P50/P90/P99 (and count, mean, max) of one latency sample, in seconds."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    mean: float | None
    max: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def triple(self, *, unit_ms: bool = False) -> str:
        """``"0.41 / 0.80 / 1.22 s (max 1.30, n=40)"`` (or ms), ``"no data"`` when empty."""
        if self.count == 0 or self.p50 is None or self.p90 is None or self.p99 is None:
            return "no data"
        scale, unit, digits = (1000.0, "ms", 1) if unit_ms else (1.0, "s", 2)
        worst = f"max {self.max * scale:.{digits}f}, " if self.max is not None else ""
        return (f"{self.p50 * scale:.{digits}f} / {self.p90 * scale:.{digits}f} / "
                f"{self.p99 * scale:.{digits}f} {unit} ({worst}n={self.count})")


def summarize(values: Sequence[float]) -> Summary:
    """Summary of ``values``; every statistic is ``None`` for an empty sample."""
    if not values:
        return Summary(0, None, None, None, None, None)
    return Summary(
        count=len(values),
        p50=percentile(values, 50),
        p90=percentile(values, 90),
        p99=percentile(values, 99),
        mean=sum(values) / len(values),
        max=max(values),
    )
