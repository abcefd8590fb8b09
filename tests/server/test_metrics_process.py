"""Process metrics, the TLS certificate expiry gauge and the windowed maxima, on a fresh registry each."""

from __future__ import annotations

import datetime
import os
import threading
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from stt_server.metrics import MAX_WINDOW_SEC, DecodeTiming, ServerMetrics
from stt_server.metrics_process import (
    CertExpiryCollector,
    ThreadsCollector,
    WindowedMax,
    certificate_not_after,
)
from stt_server.tools.self_signed_cert import write_self_signed


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_process_collector_and_threads_are_on_our_registry() -> None:
    metrics = ServerMetrics()
    registry = metrics.registry
    rss = registry.get_sample_value("process_resident_memory_bytes")
    assert rss is not None and rss > 10 * 1024 * 1024  # a Python process with grpc loaded
    assert (registry.get_sample_value("process_cpu_seconds_total") or 0) > 0
    before = registry.get_sample_value("process_open_fds")
    pipes = [os.pipe() for _ in range(3)]
    try:
        during = registry.get_sample_value("process_open_fds")
    finally:
        for read_end, write_end in pipes:
            os.close(read_end)
            os.close(write_end)
    assert before is not None and during == before + 6
    threads = registry.get_sample_value("process_threads")
    assert threads is not None and threads >= threading.active_count()


def test_threads_gauge_follows_new_threads() -> None:
    collector = ThreadsCollector()
    before = next(iter(collector.collect())).samples[0].value
    stop = threading.Event()
    workers = [threading.Thread(target=stop.wait) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        during = next(iter(collector.collect())).samples[0].value
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert during >= before + 3


def test_cert_expiry_gauge_only_while_tls_is_on(tmp_path: Path) -> None:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    write_self_signed(cert, key, days=30)
    metrics = ServerMetrics()
    assert "stt_tls_cert_expiry_timestamp_seconds" not in generate_latest(metrics.registry).decode()
    metrics.tls_cert.set_cert_file(cert)
    expiry = metrics.registry.get_sample_value("stt_tls_cert_expiry_timestamp_seconds")
    in_30_days = datetime.datetime.now(tz=datetime.UTC).timestamp() + 30 * 86400
    assert expiry is not None and abs(expiry - in_30_days) < 2 * 86400
    assert expiry == certificate_not_after(cert)
    metrics.tls_cert.set_cert_file(None)
    assert metrics.registry.get_sample_value("stt_tls_cert_expiry_timestamp_seconds") is None


def test_cert_reload_reads_the_new_not_after(tmp_path: Path) -> None:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    collector = CertExpiryCollector()
    write_self_signed(cert, key, days=1)
    collector.set_cert_file(cert)
    first = next(iter(collector.collect())).samples[0].value
    write_self_signed(cert, key, days=90)
    collector.set_cert_file(cert)
    second = next(iter(collector.collect())).samples[0].value
    assert 88 * 86400 < second - first < 90 * 86400


def test_unreadable_cert_is_an_error_not_a_silent_gap(tmp_path: Path) -> None:
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError):
        CertExpiryCollector().set_cert_file(bad)


def test_windowed_max_forgets_old_values() -> None:
    clock = FakeClock()
    window = WindowedMax(window_sec=60, buckets=6, clock=clock)
    assert window.value() == 0.0
    window.observe(5.0)
    clock.now += 30
    window.observe(1.0)
    assert window.value() == 5.0
    clock.now += 35  # the 5.0 is now 65 s old
    assert window.value() == 1.0
    clock.now += 60
    assert window.value() == 0.0


def test_windowed_max_rejects_a_bad_window() -> None:
    with pytest.raises(ValueError):
        WindowedMax(window_sec=0)


def test_decode_latency_max_comes_back_down_after_one_slow_decode() -> None:
    clock = FakeClock()
    metrics = ServerMetrics(clock=clock)
    metrics.record_decode(kind="final", timing=DecodeTiming(0, 0, 9.0, 0), audio_seconds=3.0)
    assert metrics.registry.get_sample_value("stt_decode_latency_max") == 9.0
    assert metrics.registry.get_sample_value("stt_rtf_max") == 3.0
    clock.now += MAX_WINDOW_SEC + 11
    metrics.record_decode(kind="final", timing=DecodeTiming(0, 0, 0.2, 0), audio_seconds=2.0)
    assert metrics.registry.get_sample_value("stt_decode_latency_max") == pytest.approx(0.2)
    assert metrics.registry.get_sample_value("stt_rtf_max") == pytest.approx(0.1)


def test_admission_refusal_codes_are_declared_at_zero_and_count() -> None:
    metrics = ServerMetrics()
    for code in ("ERR1011", "ERR1012", "ERR1013", "ERR1020", "ERR1021"):
        assert metrics.registry.get_sample_value("stt_create_session_refusals_total", {"code": code}) == 0
    metrics.record_create_session_refused("ERR1011")
    metrics.record_create_session_refused("ERR1022")
    assert metrics.registry.get_sample_value("stt_create_session_refusals_total", {"code": "ERR1011"}) == 1
    assert metrics.registry.get_sample_value("stt_create_session_refusals_total", {"code": "ERR1022"}) == 1
