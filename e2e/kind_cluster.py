"""Thin wrapper over `kind`, `docker` and `kubectl` for the e2e tests (no Python client needed)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

REPO: Final = pathlib.Path(__file__).resolve().parents[1]
SERVER_IMAGE: Final = "stt-fleet/stt-server:dev"
OPERATOR_IMAGE: Final = "stt-fleet/stt-operator:dev"


class KindCluster:
    """One kind cluster; every command runs with its own kubeconfig file."""

    def __init__(self, *, name: str, workdir: pathlib.Path) -> None:
        self.name = name
        self.repo = REPO
        self.kubeconfig = workdir / "kubeconfig"

    def _run(self, *argv: str, timeout: float = 600) -> str:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def create(self) -> None:
        self._run("kind", "create", "cluster", "--name", self.name, "--kubeconfig", str(self.kubeconfig),
                  "--wait", "120s")

    def delete(self) -> None:
        self._run("kind", "delete", "cluster", "--name", self.name)

    def build_and_load_images(self) -> None:
        if not self.kubeconfig.exists():
            self.kubeconfig.write_text(self._run("kind", "get", "kubeconfig", "--name", self.name))
        for dockerfile, image in (("Dockerfile.server", SERVER_IMAGE), ("Dockerfile.operator", OPERATOR_IMAGE)):
            self._run("docker", "build", "-f", str(REPO / dockerfile), "-t", image, str(REPO), timeout=1800)
            self._run("kind", "load", "docker-image", image, "--name", self.name)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=300,
                                env=env, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def get(self, kind: str, name: str, *, namespace: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.kubectl("get", kind, name, "-n", namespace, "-o", "json"))
        except RuntimeError as exc:
            if "NotFound" in str(exc):
                return None
            raise

    def wait_for(self, check: Callable[[], Any], *, what: str, timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(2)  # polling a real cluster; there is no event to wait on from here
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")

    @contextmanager
    def operator(self, *, namespace: str) -> Iterator[subprocess.Popen[bytes]]:
        """The operator as a local process against this cluster (the image is tested by the chart)."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        process = subprocess.Popen([sys.executable, "-m", "stt_operator", "run", "--standalone",
                                    "--namespace", namespace], env=env)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
