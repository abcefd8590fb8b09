"""Metrics about the server process itself, and the windowed maxima the alerts can use.

``ServerMetrics`` registers these on its injected registry next to the server's own metrics:

- ``prometheus_client``'s ``ProcessCollector`` (``process_resident_memory_bytes``,
  ``process_cpu_seconds_total``, ``process_open_fds``, ``process_max_fds``, ...) plus
  ``process_threads`` (OS threads: the model runtime's, gRPC's and the executor's, not only Python's);
- ``stt_tls_cert_expiry_timestamp_seconds``: the serving certificate's ``notAfter``, read when the
  server starts (and on every ``set_tls_cert``), present only while TLS is on;
- ``WindowedMax``: the largest value seen in the last ``window_sec`` seconds. A maximum kept since
  start never comes down, so one slow decode would hold an alert on it firing forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

import psutil
from cryptography import x509
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CERT_EXPIRY_METRIC: Final = "stt_tls_cert_expiry_timestamp_seconds"


class ThreadsCollector(Collector):
    """``process_threads``: OS threads in this process, read at scrape time."""

    def __init__(self, *, count: Callable[[], int] | None = None) -> None:
        self._count = count if count is not None else psutil.Process().num_threads

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("process_threads", "OS threads in the server process")
        family.add_metric([], float(self._count()))
        return [family]


def certificate_not_after(cert_file: Path) -> float:
    """The Unix time at which the first (leaf) certificate in PEM file ``cert_file`` expires."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return cert.not_valid_after_utc.timestamp()


class CertExpiryCollector(Collector):
    """``stt_tls_cert_expiry_timestamp_seconds``, only once a certificate is set (TLS on)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._not_after: float | None = None

    def set_cert_file(self, cert_file: Path | None) -> None:
        """Read ``cert_file``'s ``notAfter`` now (start or reload); ``None`` (TLS off) drops the series."""
        not_after = None if cert_file is None else certificate_not_after(cert_file)
        with self._lock:
            self._not_after = not_after

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            not_after = self._not_after
        if not_after is None:
            return []
        family = GaugeMetricFamily(CERT_EXPIRY_METRIC, "Unix time at which the serving TLS certificate expires")
        family.add_metric([], not_after)
        return [family]


class WindowedMax:
    """The largest value observed in the last ``window_sec`` seconds (0 when none).

    Values land in ``buckets`` time slots of ``window_sec / buckets`` seconds; a slot older than the
    window is forgotten, so the maximum decays within one slot's width of the window.
    """

    def __init__(self, *, window_sec: float = 60.0, buckets: int = 6,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if window_sec <= 0 or buckets < 1:
            raise ValueError("window_sec must be positive and buckets at least 1")
        self._slot_sec = window_sec / buckets
        self._buckets = buckets
        self._clock = clock
        self._lock = threading.Lock()
        self._slots: dict[int, float] = {}

    def observe(self, value: float) -> None:
        slot = int(self._clock() // self._slot_sec)
        with self._lock:
            self._slots[slot] = max(self._slots.get(slot, value), value)
            self._forget(slot)

    def value(self) -> float:
        slot = int(self._clock() // self._slot_sec)
        with self._lock:
            self._forget(slot)
            return max(self._slots.values(), default=0.0)

    def _forget(self, current: int) -> None:
        for old in [s for s in self._slots if s <= current - self._buckets]:
            del self._slots[old]
