"""SLO row: docs/slo.md's four objectives now, and how much of each error budget is left.

The latency objectives are P99s, so 1 % of events may miss them: the budget left over the
dashboard's time range is `1 - (slow events / all events) / 1 %`, where "slow" is the count above
the objective's histogram bucket. Availability allows 0.5 % server errors (the PrometheusRule's
statuses: shedding and client mistakes do not count). `or vector(0)` keeps a healthy server's
"no server errors yet" a 0, not an empty panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import Panel

from stt_operator.builders.prometheusrule import SERVER_ERROR_STATUSES, SHED_STATUSES
from stt_operator.dashboards.panels import RATE, SEL, Query, quantile, series, single
from stt_operator.spec_sections import Thresholds

DEFAULTS: Final = Thresholds()
WINDOW: Final = "$__range"
LATENCY_BUDGET: Final = 0.01  # a P99 objective lets 1 % of events be slower
# The server's histogram bounds (stt_server.metrics LATENCY_BUCKETS / FAST_BUCKETS; a test keeps them
# equal): a budget counts events above the largest bound at or under the objective.
LATENCY_BOUNDS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0)
FAST_BOUNDS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class LatencyObjective:
    title: str
    histogram: str
    seconds: float
    bounds: tuple[float, ...]

    @property
    def budget_bound(self) -> float:
        """The bucket bound the budget counts from (the objective itself when it is a bound)."""
        return max((b for b in self.bounds if b <= self.seconds), default=self.bounds[0])


def objectives(t: Thresholds) -> tuple[LatencyObjective, ...]:
    """The three latency objectives with this SttServer's thresholds (spec.monitoring...thresholds)."""
    return (
        LatencyObjective("CreateSession", "stt_create_session_seconds", t.create_session_p99_seconds, FAST_BOUNDS),
        LatencyObjective("First partial", "stt_first_partial_latency_seconds", t.first_partial_p99_seconds,
                         LATENCY_BOUNDS),
        LatencyObjective("Final", "stt_final_latency_seconds", t.final_p99_seconds, LATENCY_BOUNDS),
    )


def bucket_label(seconds: float) -> str:
    """An `le` label value as prometheus_client writes it (`0.3`, `5.0`)."""
    return repr(float(seconds))


def grpc_ratio(statuses: str, *, window: str = RATE) -> str:
    """Share of gRPC calls that ended with one of `statuses` (0 while none did)."""
    part = f'sum(rate(stt_grpc_requests_total{{{SEL}, grpc_status=~"{statuses}"}}[{window}]))'
    return f"({part} or vector(0)) / sum(rate(stt_grpc_requests_total{{{SEL}}}[{window}]))"


def latency_budget_left(objective: LatencyObjective) -> str:
    fast = (f'sum(increase({objective.histogram}_bucket{{{SEL}, le="{bucket_label(objective.budget_bound)}"}}'
            f"[{WINDOW}]))")
    total = f"sum(increase({objective.histogram}_count{{{SEL}}}[{WINDOW}]))"
    return f"1 - (1 - {fast} / {total}) / {LATENCY_BUDGET:g}"


def availability_budget_left(t: Thresholds) -> str:
    return f"1 - ({grpc_ratio(SERVER_ERROR_STATUSES, window=WINDOW)}) / {t.error_rate_percent / 100:g}"


def panels(t: Thresholds) -> list[Builder[Panel]]:
    """Four objectives now (P99 over the rate window), four budgets left, error and shed ratios."""
    error_limit = t.error_rate_percent / 100
    now: list[Builder[Panel]] = [
        single(f"{o.title} P99", Query(quantile(0.99, o.histogram), "P99"), unit="s", limit=o.seconds,
               description=f"SLO: P99 <= {o.seconds:g} s ({o.histogram})")
        for o in objectives(t)]
    now.append(single("Server error ratio", Query(grpc_ratio(SERVER_ERROR_STATUSES), "errors"),
                      unit="percentunit", limit=error_limit, decimals=2,
                      description=f"SLO: <= {error_limit:.1%} of gRPC calls end {SERVER_ERROR_STATUSES}"))
    budgets: list[Builder[Panel]] = [
        single(f"{o.title} budget left", Query(latency_budget_left(o), "budget"), unit="percentunit",
               floor=0.0, decimals=1,
               description=f"Share of the 1 % of events allowed above {o.budget_bound:g} s (the bucket "
                           f"bound at or under the {o.seconds:g} s objective) still unspent over the "
                           "dashboard's time range")
        for o in objectives(t)]
    budgets.append(single("Availability budget left", Query(availability_budget_left(t), "budget"),
                          unit="percentunit", floor=0.0, decimals=1,
                          description=f"Share of the {error_limit:.1%} server-error budget still unspent "
                                      "over the dashboard's time range"))
    ratios: list[Builder[Panel]] = [
        series("Server error ratio vs objective", [Query(grpc_ratio(SERVER_ERROR_STATUSES), "server errors")],
               unit="percentunit", limit=error_limit, width=12,
               description="Availability objective: server-side failures per gRPC call"),
        series("Load shed ratio (tracked, not in the SLO)", [Query(grpc_ratio(SHED_STATUSES), "shed")],
               unit="percentunit", width=12,
               description=f"Calls refused by limits ({SHED_STATUSES}): excluded from availability"),
    ]
    return [*now, *budgets, *ratios]
