"""A real stt-server process scraped by a real Prometheus, both on loopback, for dashboard checks.

The server runs the bundled tiny.en on CPU with small limits (so a modest load reaches them), a
control token and TLS (a throwaway CA from `pki.py`, so the certificate-expiry gauge exists). Prometheus scrapes its `/metrics` every second with the labels a ServiceMonitor's
scrape gives a pod (`namespace`, `job` = the SttServer, `pod`), so the dashboard's variables
select it as they would in a cluster. Both processes stop when the context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import yaml

from stt_localfleet.pki import ensure_pki

TOKEN: Final = "dashboard-check-token"
NAMESPACE: Final = "speech"
STTSERVER: Final = "stt-a"
POD: Final = "stt-a-5d8f7c9b4-x2k4p"
START_TIMEOUT_SEC: Final = 120.0
# Small enough that a few streams reach each limit: 4 sessions per key, 6 in all, 30 requests a minute.
SERVER_CONFIG: Final[dict[str, Any]] = {
    "limits": {"max_sessions": 6, "max_sessions_per_api_key": 4, "requests_per_minute_per_api_key": 30,
               "session_idle_timeout_sec": 8, "max_decode_pending": 4},
    "streaming": {"partial_interval_sec": 0.3},
    "model": {"device": "cpu", "num_workers": 1},
    "logging": {"format": "json", "level": "WARNING"},
}


@dataclass(frozen=True)
class ScrapedServer:
    grpc_target: str
    http_url: str
    prometheus_url: str
    ca_pem: bytes
    token: str = TOKEN

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the server's throwaway CA (for the https control plane)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(argv: list[str], *, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _until(check: Any, *, what: str, timeout: float, logs: Path) -> None:
    """Poll the coroutine function `check` until it returns True, or fail with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            if await check():
                return
        await asyncio.sleep(0.25)
    tail = "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(logs.glob("*.log")))
    raise TimeoutError(f"{what} not within {timeout:g}s; logs:\n{tail}")


@contextlib.asynccontextmanager
async def scraped_server(workdir: Path, *, prometheus: str | None = None) -> AsyncIterator[ScrapedServer]:
    """Start stt-server and a Prometheus scraping it every second; yield where they listen."""
    binary = prometheus or shutil.which("prometheus") or "/usr/bin/prometheus"
    grpc_port, http_port, prom_port = free_port(), free_port(), free_port()
    pki = ensure_pki(workdir / "pki", node_name="dashboard-check", service_ips=())
    tls = {"cert_file": str(pki.serving_cert), "key_file": str(pki.serving_key)}
    config = {**SERVER_CONFIG, "server": {"grpc_host": "127.0.0.1", "grpc_port": grpc_port,
                                          "http_host": "127.0.0.1", "http_port": http_port, "rest_port": 0,
                                          "tls": tls},
              "auth": {"control_token": TOKEN}}
    (workdir / "server.yaml").write_text(yaml.safe_dump(config))
    (workdir / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": STTSERVER, "authorization": {"type": "Bearer", "credentials": TOKEN},
            "scheme": "https", "tls_config": {"ca_file": str(pki.ca_cert)},
            "static_configs": [{"targets": [f"127.0.0.1:{http_port}"],
                                "labels": {"namespace": NAMESPACE, "pod": POD}}],
        }],
    }))
    server_cmd = [str(Path(sys.executable).with_name("stt-server")), "--config", str(workdir / "server.yaml")]
    started: list[subprocess.Popen[bytes]] = []
    try:
        started.append(_spawn(server_cmd, log=workdir / "server.log"))
        started.append(_spawn(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], log=workdir / "prometheus.log"))
        prom_url = f"http://127.0.0.1:{prom_port}"
        stack = ScrapedServer(grpc_target=f"127.0.0.1:{grpc_port}", http_url=f"https://127.0.0.1:{http_port}",
                              prometheus_url=prom_url, ca_pem=pki.ca_cert.read_bytes())
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async def ready() -> bool:
                async with http.get(f"{stack.http_url}/health/ready", ssl=stack.ssl_context()) as response:
                    return response.status == 200

            async def scraped() -> bool:
                async with http.get(f"{prom_url}/api/v1/query", params={"query": "stt_ready == 1"}) as response:
                    return bool((await response.json())["data"]["result"])

            await _until(ready, what="stt-server ready", timeout=START_TIMEOUT_SEC, logs=workdir)
            await _until(scraped, what="Prometheus scraping stt-server", timeout=60, logs=workdir)
        yield stack
    finally:
        for process in reversed(started):
            _stop(process)
