"""Fault injection for the local API server: make the next N matching requests fail or hang.

Tests use it to prove the operator converges through conflicts, server errors and timeouts:
`server.faults.add(method="PATCH", path=r"/deployments/", status=409, times=2)`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field


@dataclass
class Fault:
    method: str  # HTTP method, or "*"
    path: re.Pattern[str]  # searched in the request path
    status: int = 500  # answered with a Status body of this code; ignored when hang_sec is set
    times: int = 1  # how many matching requests still get the fault
    hang_sec: float | None = None  # hold the request this long (the client times out first)
    hits: int = field(default=0)


class FaultPlan:
    """An ordered list of faults; the first live match wins and uses up one of its `times`."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.released = asyncio.Event()

    def add(self, *, method: str, path: str, status: int = 500, times: int = 1,
            hang_sec: float | None = None) -> Fault:
        fault = Fault(method=method.upper(), path=re.compile(path), status=status, times=times, hang_sec=hang_sec)
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Drop every fault and release hanging requests (they then fail with 503)."""
        self.faults.clear()
        self.released.set()
        self.released = asyncio.Event()

    def take(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method in ("*", method.upper()) and fault.path.search(path):
                fault.times -= 1
                fault.hits += 1
                return fault
        return None

    async def hang(self, fault: Fault) -> None:
        released = self.released
        try:
            async with asyncio.timeout(fault.hang_sec or 0.0):
                await released.wait()
        except TimeoutError:
            pass
