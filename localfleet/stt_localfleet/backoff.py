"""The kubelet's crash-loop back-off (client-go flowcontrol.Backoff, as kuberuntime uses it).

A container that exits is restarted at once the first time; each later restart waits the current
back-off after the exit (10 s, doubling, capped at 5 min). A container that stayed up for twice the
cap since the last restart starts over at the base. `scale` shrinks both figures for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

BASE_SEC: Final = 10.0
CAP_SEC: Final = 300.0


@dataclass
class _Entry:
    backoff: float
    last_update: float


class CrashBackoff:
    """Back-off per key (one per pod container); times are `clock()` seconds."""

    def __init__(self, *, scale: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.base = BASE_SEC * scale
        self.cap = CAP_SEC * scale
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def _expired(self, event_time: float, entry: _Entry) -> bool:
        return event_time - entry.last_update > 2 * self.cap

    def remaining(self, key: str, *, finished_at: float) -> float:
        """Seconds still to wait before restarting a container that exited at `finished_at` (0: go)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(finished_at, entry):
            return 0.0
        return max(0.0, entry.backoff - (self.clock() - finished_at))

    def current(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.backoff if entry else self.base

    def next(self, key: str) -> None:
        """Record a restart now: the next one waits twice as long (up to the cap)."""
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry):
            self._entries[key] = _Entry(self.base, now)
        else:
            entry.backoff, entry.last_update = min(entry.backoff * 2, self.cap), now

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)
