"""``/metrics``, ``/metrics.json``, ``/info`` and ``/system`` bodies, and TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
from control_harness import FakeView, StartPlane
from prometheus_client.parser import text_string_to_metric_families
from stt_server.metrics import DecodeTiming
from stt_server.tools.self_signed_cert import write_self_signed


async def test_metrics_text_exposes_seed_names_and_histograms(start_plane: StartPlane) -> None:
    plane = await start_plane()
    plane.metrics.active_sessions.set(3)
    plane.metrics.record_decode(kind="final", timing=DecodeTiming(0.1, 0.2, 0.3, 0.05), audio_seconds=3.0)
    plane.metrics.record_rate_limit_block("decode_queue")
    plane.metrics.record_partial_dropped()
    status, text = await plane.get("/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["stt_active_sessions"].samples[0].value == 3
    assert families["stt_partial_drop_count"].samples[0].value == 1
    assert families["stt_rate_limit_blocks_decode_queue"].samples[0].value == 1
    buckets = [s for s in families["stt_decode_phase_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["phase"] == "inference"]
    assert buckets and buckets[-1].value == 1


async def test_metrics_json_has_the_seed_fields(start_plane: StartPlane) -> None:
    plane = await start_plane(view=FakeView(extra={"api_key_sessions": {"k1": 2}}))
    m = plane.metrics
    m.active_sessions.set(2)
    m.decode_pending.set(5)
    m.buffer_bytes_total.set(64000)
    m.record_decode(kind="partial", timing=DecodeTiming(0.1, 0.2, 0.4, 0.0), audio_seconds=2.0)
    m.record_error(code="ERR1011", grpc_status="RESOURCE_EXHAUSTED")
    m.record_rate_limit_block("sessions_per_key")
    m.vad_triggers.labels(event="speech_begin").inc(2)
    m.vad_active_utterances.set(1)
    m.set_stream_buffer("session-a", 3200)
    status, body = await plane.get("/metrics.json")
    assert status == 200
    got = body["metrics"]
    assert got["active_sessions"] == 2 and got["decode_pending"] == 5 and got["buffer_bytes_total"] == 64000
    assert got["api_key_sessions"] == {"k1": 2}
    assert got["decode_timing"]["count"] == 1
    assert abs(got["decode_timing"]["phases"]["inference"]["avg_sec"] - 0.4) < 1e-9
    assert abs(got["rtf"]["avg"] - 0.2) < 1e-9 and abs(got["rtf"]["max"] - 0.2) < 1e-9
    assert got["error_counts"] == {"ERR1011": 1}
    assert got["error_counts_by_status"] == {"resource_exhausted": 1}
    assert got["rate_limit_blocks"]["sessions_per_key"] == 1 and got["rate_limit_blocks"]["decode_queue"] == 0
    assert got["vad_triggers"]["speech_begin"] == 2 and got["vad_active_utterances"] == 1
    assert got["partial_drop_count"] == 0
    assert list(got["stream_buffer_bytes"].values()) == [3200]
    assert "session-a" not in str(body)  # per-stream keys are hashed


async def test_info_reports_version_model_limits_and_uptime(start_plane: StartPlane) -> None:
    plane = await start_plane()
    status, body = await plane.get("/info")
    assert status == 200
    assert body["version"] == "0.1.0" and body["model"] == "tiny.en" and body["device"] == "cpu"
    assert body["limits"]["max_sessions"] == 32
    assert 12.0 <= body["uptime_sec"] < 60.0


async def test_system_reports_process_figures_and_gpu_reason(start_plane: StartPlane) -> None:
    plane = await start_plane()
    status, body = await plane.get("/system")
    assert status == 200
    assert body["source"] == "psutil"
    process = body["process"]
    assert process["rss_bytes"] > 10_000_000 and process["num_threads"] >= 1 and process["open_fds"] > 3
    assert isinstance(process["cpu_percent"], float)
    assert body["system"]["cpu_count"] >= 1
    assert body["gpu"] == {"available": False, "reason": "GPU metrics disabled (set STT_ENABLE_GPU_METRICS=1)"}


async def test_system_with_gpu_enabled_but_unavailable_says_why(start_plane: StartPlane) -> None:
    plane = await start_plane(metrics={"enable_gpu_metrics": True})
    _, body = await plane.get("/system")
    assert body["gpu"]["available"] is False
    assert body["gpu"]["reason"] != "" and "disabled" not in body["gpu"]["reason"]


async def test_tls_serves_https_with_the_configured_cert(start_plane: StartPlane, tmp_path: Path) -> None:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    write_self_signed(cert, key, days=2)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    plane = await start_plane(server={"tls": {"cert_file": str(cert), "key_file": str(key)}}, ssl=client_ctx)
    assert plane.plane.tls is True
    assert await plane.get("/health/live") == (200, {"status": "alive"})
    # Plain HTTP on the TLS port gets nowhere.
    with pytest.raises(aiohttp.ClientError):
        async with plane.session.get(f"http://127.0.0.1:{plane.plane.port}/health/live"):
            pass


async def test_every_sample_sits_under_a_matching_type_line(start_plane: StartPlane) -> None:
    plane = await start_plane()
    plane.metrics.record_partial_dropped()
    plane.metrics.record_error(code="ERR1011", grpc_status="RESOURCE_EXHAUSTED")
    plane.metrics.set_stream_buffer("s", 10)
    plane.metrics.create_session_seconds.observe(0.01)
    _, text = await plane.get("/metrics")
    types: dict[str, str] = {}
    orphans = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line and not line.startswith("#"):
            sample = line.split("{")[0].split(" ")[0]
            base = sample.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
            if types.get(sample) is None and types.get(base) != "histogram":
                orphans.append(sample)
    assert orphans == []
    # Seed 002's bare names keep their exact sample names.
    assert types["stt_partial_drop_count"] == "untyped" and "stt_partial_drop_count 1.0" in text
    assert types["stt_error_counts_resource_exhausted"] == "untyped"
    assert types["stt_errors_total"] == "counter"


async def test_http_requests_are_counted_by_route_not_raw_path(start_plane: StartPlane) -> None:
    plane = await start_plane(auth={"control_token": "tok"})
    assert (await plane.get("/health/live"))[0] == 200
    assert (await plane.get("/metrics"))[0] == 401
    assert (await plane.get("/no/such/page-123"))[0] == 404
    status, text = await plane.get("/metrics", token="tok")
    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}

    def requests(endpoint: str, code: str) -> float:
        return samples.get(("http_requests_total", (("endpoint", endpoint), ("method", "GET"), ("status", code))), 0)
    assert requests("/health/live", "200") == 1
    assert requests("/metrics", "401") == 1
    assert requests("unmatched", "404") == 1  # a scanner's random paths do not become label values
    assert samples[("http_requests_in_progress", ())] == 1  # the scrape itself
    assert samples[("http_request_duration_seconds_count", (("endpoint", "/health/live"), ("method", "GET")))] == 1
    assert samples[("http_response_size_bytes_count", (("endpoint", "/health/live"),))] == 1
