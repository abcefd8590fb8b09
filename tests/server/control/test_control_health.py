"""``/health``, ``/health/live`` and ``/health/ready`` in every state the server can be in."""

from __future__ import annotations

import dataclasses

import pytest
from control_harness import HEALTHY, FakeView, StartPlane

NO_MODEL = dataclasses.replace(HEALTHY, model_loaded=False, reasons=("model not loaded",))
POOL_FAILED = dataclasses.replace(HEALTHY, workers_healthy=False, reasons=("worker pool failed: boom",))
GRPC_DOWN = dataclasses.replace(HEALTHY, grpc_running=False, reasons=("gRPC server not running",))
LOADING = dataclasses.replace(HEALTHY, model_loaded=False, loading=True, reasons=("model loading",))
DRAINING = dataclasses.replace(HEALTHY, draining=True, reasons=("draining",))


async def test_healthy_server_answers_200_with_details(start_plane: StartPlane) -> None:
    plane = await start_plane()
    status, body = await plane.get("/health")
    assert status == 200
    assert body["status"] == "healthy" and body["ready"] is True
    assert body["checks"] == {"grpc_running": True, "model_loaded": True, "workers_healthy": True,
                              "loading": False, "draining": False}
    assert body["reasons"] == []
    assert body["model"]["name"] == "tiny.en" and body["model"]["backend"] == "faster-whisper"
    assert body["uptime_seconds"] >= 12.0
    assert body["system"]["rss_bytes"] > 0
    assert set(body["metrics"]) >= {"active_sessions", "decode_pending", "buffer_bytes_total"}


@pytest.mark.parametrize(
    ("report", "failed_check"),
    [(NO_MODEL, "model_loaded"), (POOL_FAILED, "workers_healthy"), (GRPC_DOWN, "grpc_running")],
)
async def test_unhealthy_server_answers_503_with_reasons(start_plane: StartPlane, report, failed_check) -> None:
    plane = await start_plane(view=FakeView(report=report))
    status, body = await plane.get("/health")
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["checks"][failed_check] is False
    assert body["reasons"] == list(report.reasons)
    ready_status, ready_body = await plane.get("/health/ready")
    assert (ready_status, ready_body) == (503, {"status": "not_ready", "state": "unhealthy"})
    live_status, _ = await plane.get("/health/live")
    assert live_status == 200  # alive though unhealthy: a restart would not load a missing model


@pytest.mark.parametrize(("report", "state"), [(LOADING, "loading"), (DRAINING, "draining")])
async def test_not_ready_while_loading_or_draining(start_plane: StartPlane, report, state) -> None:
    plane = await start_plane(view=FakeView(report=report))
    status, body = await plane.get("/health/ready")
    assert (status, body) == (503, {"status": "not_ready", "state": state})
    live = await plane.get("/health/live")
    assert live == (200, {"status": "alive"})


async def test_draining_server_is_healthy_but_not_ready(start_plane: StartPlane) -> None:
    plane = await start_plane(view=FakeView(report=DRAINING))
    status, body = await plane.get("/health")
    assert status == 200 and body["ready"] is False and body["checks"]["draining"] is True


async def test_health_follows_state_changes(start_plane: StartPlane) -> None:
    view = FakeView(report=LOADING)
    plane = await start_plane(view=view)
    assert (await plane.get("/health/ready"))[0] == 503
    view.report = HEALTHY
    assert await plane.get("/health/ready") == (200, {"status": "ready"})
    assert (await plane.get("/health"))[0] == 200
