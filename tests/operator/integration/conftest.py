"""Fixtures: a local API server with the SttServer CRD (and optionally the prometheus-operator
CRDs) and the real operator process talking to it over HTTP."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from operator_cluster import CRD_FILE, NAMESPACE, PROMETHEUS_CRDS, Cluster, running_operator
from stt_localfleet.apiserver import LocalApiServer


async def _cluster(tmp_path: pathlib.Path, *, monitoring: bool) -> AsyncIterator[Cluster]:
    if not CRD_FILE.exists():
        pytest.skip(f"{CRD_FILE} is not there")
    crds = [CRD_FILE]
    if monitoring:
        if not PROMETHEUS_CRDS.is_dir():
            pytest.skip(f"{PROMETHEUS_CRDS} (prometheus-operator CRDs) is not present")
        crds.append(PROMETHEUS_CRDS)
    async with LocalApiServer(crd_paths=crds, namespaces=[NAMESPACE]) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        async with running_operator(kubeconfig, tmp_path / "operator.log"):
            yield Cluster(server)


@pytest_asyncio.fixture
async def cluster(tmp_path: pathlib.Path) -> AsyncIterator[Cluster]:
    """No prometheus-operator in this cluster: monitoring children must be skipped, with a reason."""
    async for value in _cluster(tmp_path, monitoring=False):
        yield value


@pytest_asyncio.fixture
async def monitored_cluster(tmp_path: pathlib.Path) -> AsyncIterator[Cluster]:
    """The prometheus-operator CRDs are installed: ServiceMonitor and PrometheusRule are made."""
    async for value in _cluster(tmp_path, monitoring=True):
        yield value
