"""Dashboard, metrics capture and plot against a real control plane on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
from pathlib import Path

import pytest
from rich.console import Console
from stt_server.tools import dashboard, metrics_capture, plot_metrics
from stt_server.tools.self_signed_cert import write_self_signed
from tools_harness import TOKEN, StartPlane


async def test_dashboard_once_shows_the_figures(start_plane: StartPlane, capsys: pytest.CaptureFixture[str]) -> None:
    plane = await start_plane(auth={"control_token": TOKEN})
    code = await asyncio.to_thread(
        dashboard.main, ["--base-url", plane.url, "--token", TOKEN, "--once", "--no-clear"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "active sessions" in out and "4 / -" in out  # the plane's metrics say 4 sessions
    assert "pending" in out and "2 / -" in out
    assert "RSS" in out and "MiB" in out


async def test_dashboard_once_without_token_fails(start_plane: StartPlane,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    plane = await start_plane(auth={"control_token": TOKEN})
    code = await asyncio.to_thread(dashboard.main, ["--base-url", plane.url, "--once", "--no-clear"])
    assert code == 1
    assert "HTTP 401" in capsys.readouterr().out


async def test_dashboard_over_tls_with_explicit_urls(start_plane: StartPlane, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    write_self_signed(cert, key, days=1)
    plane = await start_plane(server={"tls": {"cert_file": str(cert), "key_file": str(key)}})
    code = await asyncio.to_thread(dashboard.main, [
        "--metrics-url", f"{plane.url}/metrics.json", "--system-url", f"{plane.url}/system",
        "--insecure", "--once", "--no-clear"])
    assert code == 0
    assert "Traffic" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
async def test_capture_then_plot(start_plane: StartPlane, tmp_path: Path, suffix: str) -> None:
    plane = await start_plane(auth={"control_token": TOKEN})
    out = tmp_path / f"capture{suffix}"
    code = await asyncio.to_thread(metrics_capture.main, [
        "--base-url", plane.url, "--token", TOKEN, "--duration-sec", "0.5", "--interval", "0.1",
        "--out", str(out)])
    assert code == 0
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert rows[0]["metrics"]["metrics"]["active_sessions"] == 4
        assert rows[0]["system"]["process"]["rss_bytes"] > 0
    else:
        with out.open(newline="") as stream:
            rows = list(csv.DictReader(stream))
        assert rows[0]["metrics.metrics.decode_pending"] == "2"
    assert 2 <= len(rows) <= 8
    png = tmp_path / "plot.png"
    assert plot_metrics.main([str(out), "--relative", "--output", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_metrics.plot(plot_metrics.load_rows(out), tmp_path / "again.png", relative=True) == 6


def test_plot_series_relative_time() -> None:
    rows = [{"ts": 100.0, "k": 1.0}, {"ts": 101.5, "k": None}, {"ts": 102.0, "k": 3.0}]
    assert plot_metrics.series(rows, "k", relative=True) == ([0.0, 2.0], [1.0, 3.0])


def test_capture_rejects_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        metrics_capture.main(["--out", str(tmp_path / "m.txt")])


def test_render_is_pure_and_shows_shedding() -> None:
    snapshot = {
        "metrics": {"metrics": {"rate_limit_blocks": {"decode_queue": 7}, "error_counts": {"ERR1011": 3},
                                "partial_drop_count": 5}},
        "system": {"process": {}, "gpu": {"available": False, "reason": "disabled"}},
    }
    console = Console(record=True, width=100)
    console.print(dashboard.render(snapshot))
    text = console.export_text()
    assert "rate limit: decode_queue" in text and "7" in text
    assert "error ERR1011" in text and "unavailable: disabled" in text


async def test_dashboard_keeps_polling_at_the_interval(start_plane: StartPlane) -> None:
    plane = await start_plane()
    console = Console(record=True, width=100)
    args = dashboard.build_parser().parse_args(["--base-url", plane.url, "--interval", "0.05", "--no-clear"])
    task = asyncio.create_task(dashboard.run(args, console))
    try:
        async with asyncio.timeout(10):
            while console.export_text(clear=False).count("Traffic") < 3:
                plane.metrics.active_sessions.inc()  # each poll sees the figure move
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    rows = [line for line in console.export_text().splitlines() if "active sessions" in line]
    assert len(rows) >= 3
    assert len(set(rows)) >= 2  # later polls show the new figure
