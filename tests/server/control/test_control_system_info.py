"""``SystemSampler`` without psutil and GPU figures from a fake NVML (pure, no server)."""

from __future__ import annotations

import types
from typing import Any

from stt_server.control.system_info import SystemSampler, gpu_figures


def test_without_psutil_falls_back_to_basic_rss() -> None:
    body = SystemSampler(enable_gpu=False, psutil_module=None).sample()
    assert body["source"] == "resource"
    assert body["process"]["rss_bytes"] > 10_000_000
    assert body["process"]["num_threads"] >= 1


def test_gpu_disabled_and_missing_pynvml_give_reasons() -> None:
    assert "STT_ENABLE_GPU_METRICS" in gpu_figures(enabled=False, pynvml=None)["reason"]
    assert "nvidia-ml-py" in gpu_figures(enabled=True, pynvml=None)["reason"]


def _fake_nvml(count: int, *, init_error: Exception | None = None) -> Any:
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if init_error:
            raise init_error

    return types.SimpleNamespace(
        calls=calls,
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=1024, total=4096),
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=37),
        nvmlDeviceGetName=lambda h: b"Fake GPU",
        nvmlDeviceGetTemperature=lambda h, kind: 55,
    )


def test_gpu_figures_from_nvml() -> None:
    nvml = _fake_nvml(1)
    body = gpu_figures(enabled=True, pynvml=nvml)
    assert body == {"available": True, "devices": [{
        "index": 0, "name": "Fake GPU", "memory_used_bytes": 1024, "memory_total_bytes": 4096,
        "utilization_percent": 37.0, "temperature_c": 55.0}]}
    assert nvml.calls == ["init", "shutdown"]


def test_no_driver_or_no_device_is_unavailable() -> None:
    assert "NVML unavailable" in gpu_figures(enabled=True, pynvml=_fake_nvml(1, init_error=OSError("no driver")))["reason"]
    assert gpu_figures(enabled=True, pynvml=_fake_nvml(0))["reason"] == "no GPU visible to NVML"
