"""A kind cluster for the e2e tests, or a clear skip when Docker, kind or kubectl is missing.

`STT_E2E_CLUSTER=<name>` reuses an existing kind cluster (and leaves it running); otherwise one is
created for the session and deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from kind_cluster import KindCluster


def _missing_tools() -> str | None:
    for tool in ("docker", "kind", "kubectl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    if info.returncode != 0:
        return f"Docker's engine is not reachable (`docker info` failed: {info.stderr.strip()[:200]})"
    return None


@pytest.fixture(scope="session")
def kind_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KindCluster]:
    reason = _missing_tools()
    if reason:
        pytest.skip(f"e2e needs a kind cluster: {reason}")
    existing = os.environ.get("STT_E2E_CLUSTER")
    cluster = KindCluster(name=existing or "stt-e2e", workdir=tmp_path_factory.mktemp("kind"))
    if not existing:
        cluster.create()
    try:
        cluster.build_and_load_images()
        cluster.kubectl("apply", "-f", str(cluster.repo / "crds" / "sttservers.sttfleet.io.yaml"))
        yield cluster
    finally:
        if not existing:
            cluster.delete()
