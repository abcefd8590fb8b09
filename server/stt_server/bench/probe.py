"""The server's own view during a load run: ``/system`` and ``/metrics.json`` before, during, after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp

from stt_server.bench.report import ResourceDelta
from stt_server.tools.http_fetch import client_session, fetch_json

LATENCY_MAX_PEAK = "decode_latency_max_sec"
_COUNTERS = ("partial_drop_count", "session_limit_rejects", "decode_orphaned", "decode_cancelled",
             "sessions_created", "streams_started")


@dataclass
class ControlProbe:
    """Reads the control plane at ``base_url`` (with ``token``); every figure is optional."""

    base_url: str
    token: str | None = None
    insecure: bool = False
    peaks: dict[str, float] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = client_session(insecure=self.insecure)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def read(self) -> dict[str, Any]:
        """``{"system": ..., "metrics": ..., "ts": ...}``; raises on HTTP trouble."""
        if self._session is None:
            raise RuntimeError("use ControlProbe as an async context manager")
        base = self.base_url.rstrip("/")
        system = await fetch_json(self._session, f"{base}/system", token=self.token)
        metrics = await fetch_json(self._session, f"{base}/metrics.json", token=self.token)
        return {"ts": time.time(), "system": system, "metrics": metrics.get("metrics", {})}

    async def watch_peaks(self, *, interval: float = 1.0) -> None:
        """Until cancelled: the highest decode_pending, buffer bytes and sessions seen."""
        while True:
            try:
                snapshot = await self.read()
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, RuntimeError, TimeoutError):
                await asyncio.sleep(interval)  # a missed poll only loses one peak sample
                continue
            for key in ("decode_pending", "buffer_bytes_total", "active_sessions"):
                value = float(snapshot["metrics"].get(key, 0))
                self.peaks[key] = max(self.peaks.get(key, 0.0), value)
            # the server's maximum covers only its last 60 s: polled, its peak covers the whole run
            latency_max = snapshot["metrics"].get("decode_timing", {}).get("latency_max_sec")
            if latency_max is not None:
                self.peaks[LATENCY_MAX_PEAK] = max(self.peaks.get(LATENCY_MAX_PEAK, 0.0), float(latency_max))
            await asyncio.sleep(interval)


def resource_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> ResourceDelta:
    """CPU seconds, RSS and threads of the server process between two ``read()`` snapshots."""
    p0, p1 = before["system"].get("process", {}), after["system"].get("process", {})
    cpu = None
    if "cpu_user_sec" in p0 and "cpu_user_sec" in p1:
        cpu = (p1["cpu_user_sec"] + p1["cpu_system_sec"]) - (p0["cpu_user_sec"] + p0["cpu_system_sec"])
    return ResourceDelta(
        cpu_seconds=cpu,
        rss_before_bytes=p0.get("rss_bytes"),
        rss_after_bytes=p1.get("rss_bytes"),
        threads_before=p0.get("num_threads"),
        threads_after=p1.get("num_threads"),
        wall_seconds=after["ts"] - before["ts"],
    )


def server_side_delta(before: Mapping[str, Any], after: Mapping[str, Any], *, peaks: Mapping[str, float]) -> dict[str, Any]:
    """Counter increases over the run plus peaks of the gauges (seed 000's backpressure checklist)."""
    m0, m1 = before["metrics"], after["metrics"]
    out: dict[str, Any] = {key: m1.get(key, 0) - m0.get(key, 0) for key in _COUNTERS}
    blocks0, blocks1 = m0.get("rate_limit_blocks", {}), m1.get("rate_limit_blocks", {})
    out["rate_limit_blocks"] = {k: v - blocks0.get(k, 0) for k, v in blocks1.items()}
    t0, t1 = m0.get("decode_timing", {}), m1.get("decode_timing", {})
    decodes = t1.get("count", 0) - t0.get("count", 0)
    out["decodes"] = decodes
    if decodes:
        out["decode_latency_avg_sec"] = round(
            (t1.get("latency_total_sec", 0.0) - t0.get("latency_total_sec", 0.0)) / decodes, 4)
    maxima = [float(v) for v in (t1.get("latency_max_sec"), peaks.get(LATENCY_MAX_PEAK)) if v is not None]
    out["decode_latency_max_sec"] = max(maxima) if maxima else None
    out["rtf_avg"] = round(m1.get("rtf", {}).get("avg", 0.0), 4)
    for key, value in peaks.items():
        if key != LATENCY_MAX_PEAK:
            out[f"peak_{key}"] = value
    return out
