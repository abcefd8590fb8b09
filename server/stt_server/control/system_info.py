"""``/system``: process and host figures (psutil), plus GPU figures when asked for and present.

psutil is optional at run time: without it the answer falls back to the current RSS from
``/proc/self/statm`` (or the peak RSS from ``resource``) and says so in ``source``. GPU figures need
``enable_gpu_metrics`` and ``pynvml`` (from ``nvidia-ml-py``) and a visible GPU; otherwise
``gpu.available`` is false with a ``reason`` a person can act on.
"""

from __future__ import annotations

import importlib
import logging
import os
import resource
import sys
import threading
import time
from types import ModuleType
from typing import Any, Final

log = logging.getLogger(__name__)
AUTO: Final = object()


def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _count_open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _basic_process() -> dict[str, Any]:
    """RSS and threads without psutil: current RSS from /proc when Linux, else the peak RSS."""
    rss: int | None = None
    try:
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss = peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB, macOS bytes
    return {
        "pid": os.getpid(),
        "rss_bytes": rss,
        "num_threads": threading.active_count(),
        "open_fds": _count_open_fds(),
    }


def gpu_figures(*, enabled: bool, pynvml: ModuleType | None) -> dict[str, Any]:
    """Per-GPU memory, utilisation and temperature, or ``{"available": False, "reason": ...}``."""
    if not enabled:
        return {"available": False, "reason": "GPU metrics disabled (set STT_ENABLE_GPU_METRICS=1)"}
    if pynvml is None:
        return {"available": False, "reason": "pynvml not installed (pip install nvidia-ml-py)"}
    # pynvml raises its own NVMLError family (no driver, no device, unsupported query).
    nvml_errors = (getattr(pynvml, "NVMLError", OSError), OSError)
    try:
        pynvml.nvmlInit()
    except nvml_errors as exc:
        return {"available": False, "reason": f"NVML unavailable: {exc}"}
    try:
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            utilization = pynvml.nvmlDeviceGetUtilizationRates(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            devices.append({
                "index": index,
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_used_bytes": int(memory.used),
                "memory_total_bytes": int(memory.total),
                "utilization_percent": float(utilization.gpu),
                "temperature_c": float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
            })
    except nvml_errors as exc:
        return {"available": False, "reason": f"NVML query failed: {exc}"}
    finally:
        try:
            pynvml.nvmlShutdown()
        except nvml_errors:  # shutdown trouble must not hide the figures already read
            log.debug("nvmlShutdown failed", exc_info=True)
    if not devices:
        return {"available": False, "reason": "no GPU visible to NVML"}
    return {"available": True, "devices": devices}


class SystemSampler:
    """Builds ``/system`` answers; keeps one psutil ``Process`` so CPU percent is a real delta."""

    def __init__(self, *, enable_gpu: bool, psutil_module: ModuleType | None | object = AUTO,
                 pynvml_module: ModuleType | None | object = AUTO) -> None:
        # AUTO imports the module when installed; tests pass ``None`` to simulate its absence.
        psutil: Any = _optional_module("psutil") if psutil_module is AUTO else psutil_module
        self._psutil = psutil
        self._pynvml: Any = _optional_module("pynvml") if pynvml_module is AUTO else pynvml_module
        self._enable_gpu = enable_gpu
        self._process: Any = None
        if psutil is not None:
            self._process = psutil.Process()
            self._process.cpu_percent(None)  # prime: the first call always reads 0.0
            psutil.cpu_percent(None)

    def sample(self) -> dict[str, Any]:
        """One snapshot; cheap enough to run on the event loop (no blocking intervals)."""
        body: dict[str, Any] = {"timestamp": time.time()}
        if self._psutil is None or self._process is None:
            body["source"] = "resource"
            body["process"] = _basic_process()
            body["system"] = {"cpu_count": os.cpu_count()}
        else:
            body["source"] = "psutil"
            body["process"] = self._psutil_process(self._process)
            body["system"] = self._psutil_system(self._psutil)
        body["gpu"] = gpu_figures(enabled=self._enable_gpu, pynvml=self._pynvml)
        return body

    @staticmethod
    def _psutil_process(proc: Any) -> dict[str, Any]:
        with proc.oneshot():
            memory = proc.memory_info()
            times = proc.cpu_times()
            try:
                open_fds: int | None = proc.num_fds()
            except (AttributeError, OSError):  # num_fds is POSIX-only
                open_fds = _count_open_fds()
            return {
                "pid": proc.pid,
                "cpu_percent": proc.cpu_percent(None),
                "cpu_user_sec": times.user,
                "cpu_system_sec": times.system,
                "rss_bytes": memory.rss,
                "vms_bytes": memory.vms,
                "num_threads": proc.num_threads(),
                "open_fds": open_fds,
            }

    @staticmethod
    def _psutil_system(psutil: ModuleType) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        try:
            load = list(os.getloadavg())
        except OSError:
            load = None
        return {
            "cpu_percent": psutil.cpu_percent(None),
            "cpu_count": psutil.cpu_count(),
            "memory_total_bytes": memory.total,
            "memory_available_bytes": memory.available,
            "memory_percent": memory.percent,
            "load_avg": load,
        }
