"""Prometheus text for ``/metrics``, with seed 002's bare counter names typed consistently.

``ServerMetrics`` exports seed 002's counters under their exact names (``stt_partial_drop_count``,
``stt_rate_limit_blocks_<limit>``, ...) so the seed's queries work unchanged. ``prometheus_client``
always writes a counter's ``# TYPE`` line as ``<name>_total``, which would then describe no sample
at all and leave the bare sample unattached. This adapter re-types exactly those families as
``untyped``, so every sample sits under a matching ``# HELP`` / ``# TYPE`` pair; values, names and
every PromQL query stay the same.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


def _has_bare_counter_samples(family: Metric) -> bool:
    return family.type == "counter" and bool(family.samples) and all(s.name == family.name for s in family.samples)


class _ConsistentlyTyped(Collector):
    """A read-only view of a registry whose bare-named counter families are ``unknown``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            if _has_bare_counter_samples(family):
                retyped = Metric(family.name, family.documentation, "unknown")
                retyped.samples = list(family.samples)
                yield retyped
            else:
                yield family


def render_text(registry: CollectorRegistry) -> bytes:
    """Prometheus text exposition (0.0.4) of ``registry``."""
    return generate_latest(_ConsistentlyTyped(registry))
