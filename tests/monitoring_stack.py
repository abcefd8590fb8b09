"""Pieces shared by the tests that run the real Prometheus / Alertmanager binaries on loopback:
a free port, a healthy server view for a bare ``ControlPlane``, and a process group that always
stops what it started."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stt_server.control import HealthReport


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HealthyView:
    """A serving, healthy server for a ``ControlPlane`` without the gRPC side."""

    started_at = time.time()

    def health(self) -> HealthReport:
        return HealthReport(grpc_running=True, model_loaded=True, workers_healthy=True, loading=False,
                            draining=False)

    def info(self) -> dict[str, Any]:
        return {"version": "test"}

    def metrics_json_extra(self) -> dict[str, Any]:
        return {}


class Processes:
    """Background processes logging to files; ``stop_all`` terminates (then kills) each one."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], *, log: Path) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self._started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self._started:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes() -> Iterator[Processes]:
    group = Processes()
    try:
        yield group
    finally:
        group.stop_all()
