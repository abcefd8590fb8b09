"""The VRAM gauges on /metrics: from NVML (faked) when `metrics.enable_gpu_metrics` is on, absent when off."""

from __future__ import annotations

import types
from typing import Any

from control_harness import StartPlane
from prometheus_client import CollectorRegistry, generate_latest
from stt_server.metrics_gpu import register_gpu_metrics


def fake_nvml(count: int, *, init_error: Exception | None = None) -> Any:
    def init() -> None:
        if init_error:
            raise init_error
    return types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0, nvmlInit=init, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=1024 * (h + 1), total=80 * 2**30),
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=37),
        nvmlDeviceGetName=lambda h: b"Fake GPU", nvmlDeviceGetTemperature=lambda h, kind: 55)


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_gauges_per_gpu_from_nvml() -> None:
    registry = CollectorRegistry()
    assert register_gpu_metrics(registry, enabled=True, pynvml=fake_nvml(2)) is not None
    text = exposition(registry)
    assert 'stt_gpu_memory_used_bytes{gpu="0"} 1024.0' in text
    assert 'stt_gpu_memory_used_bytes{gpu="1"} 2048.0' in text
    assert 'stt_gpu_memory_total_bytes{gpu="1"} 8.589934592e+10' in text
    assert "stt_gpu_metrics_available 1.0" in text


def test_no_driver_reads_as_unavailable_without_series() -> None:
    registry = CollectorRegistry()
    register_gpu_metrics(registry, enabled=True, pynvml=fake_nvml(1, init_error=OSError("no driver")))
    text = exposition(registry)
    assert "stt_gpu_metrics_available 0.0" in text and "stt_gpu_memory_used_bytes{" not in text


def test_off_registers_nothing() -> None:
    registry = CollectorRegistry()
    assert register_gpu_metrics(registry, enabled=False, pynvml=fake_nvml(1)) is None
    assert "stt_gpu_" not in exposition(registry)


async def test_control_plane_metrics_follow_the_setting(start_plane: StartPlane) -> None:
    on = await start_plane(metrics={"enable_gpu_metrics": True})
    status, text = await on.get("/metrics")
    assert status == 200 and "stt_gpu_metrics_available" in text  # 0 here: no NVML on this machine
    off = await start_plane()
    status, text = await off.get("/metrics")
    assert status == 200 and "stt_gpu_" not in text
