"""GPU memory gauges on ``/metrics``, read through NVML at scrape time (``metrics.enable_gpu_metrics``).

``stt_gpu_memory_used_bytes{gpu}`` and ``stt_gpu_memory_total_bytes{gpu}`` per visible GPU, plus
``stt_gpu_metrics_available`` (0 with no NVML, no driver or no device, so a dashboard can tell "no
figures" from "no memory used"). The figures come from the same ``gpu_figures`` as ``/system``.
Registered only when the setting is on: a CPU server's ``/metrics`` carries no ``stt_gpu_`` series.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from stt_server.control.system_info import _optional_module, gpu_figures


class GpuMemoryCollector(Collector):
    """Per-GPU memory from NVML on every collect (an NVML query takes well under a millisecond)."""

    def __init__(self, *, pynvml: Any) -> None:
        self._pynvml = pynvml

    def collect(self) -> Iterator[Metric]:
        figures = gpu_figures(enabled=True, pynvml=self._pynvml)
        used = GaugeMetricFamily("stt_gpu_memory_used_bytes", "GPU memory in use (NVML)", labels=["gpu"])
        total = GaugeMetricFamily("stt_gpu_memory_total_bytes", "GPU memory size (NVML)", labels=["gpu"])
        for device in figures.get("devices", ()):
            used.add_metric([str(device["index"])], float(device["memory_used_bytes"]))
            total.add_metric([str(device["index"])], float(device["memory_total_bytes"]))
        available = GaugeMetricFamily("stt_gpu_metrics_available",
                                      "1 when NVML answered at this scrape, else 0 (no pynvml, driver or GPU)",
                                      value=1.0 if figures.get("available") else 0.0)
        yield used
        yield total
        yield available


def register_gpu_metrics(registry: CollectorRegistry, *, enabled: bool, pynvml: Any = None) -> GpuMemoryCollector | None:
    """Add the GPU gauges to ``registry`` when ``enabled``; ``pynvml`` None imports it when installed
    (tests pass a fake NVML module)."""
    if not enabled:
        return None
    collector = GpuMemoryCollector(pynvml=pynvml if pynvml is not None else _optional_module("pynvml"))
    registry.register(collector)
    return collector
