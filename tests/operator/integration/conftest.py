"""Fixtures: the session cluster with the SttServer CRD (and, once asked for, the prometheus-operator
CRDs), a namespace per test, and the real operator process serving that namespace."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from local_cluster import LocalCluster
from operator_cluster import PROMETHEUS_CRDS, Cluster
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_kubeconfig

MONITORING_CRDS = ("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com")


def serves_monitoring(local_cluster: LocalCluster) -> bool:
    return local_cluster.kubectl("get", "crd", *MONITORING_CRDS, check=False).returncode == 0


@pytest.fixture(scope="session")
def prometheus_operator_crds(local_cluster: LocalCluster) -> None:
    """The vendored prometheus-operator CRDs, applied once: CRDs are cluster-wide and stay for the session."""
    if not PROMETHEUS_CRDS.is_dir():
        pytest.skip(f"{PROMETHEUS_CRDS} (prometheus-operator CRDs) is not present")
    # Server-side: the CRDs are too large for kubectl's last-applied annotation.
    local_cluster.kubectl("apply", "--server-side", "-f", str(PROMETHEUS_CRDS))
    local_cluster.kubectl("wait", "--for=condition=Established", *(f"crd/{name}" for name in MONITORING_CRDS),
                          "--timeout=60s")


@pytest_asyncio.fixture
async def cluster_api(local_cluster: LocalCluster, sttserver_crd: None, namespace: str) -> AsyncIterator[Cluster]:
    """The test's namespace, without an operator (tests that start and stop it themselves)."""
    async with KubeApi(credentials_from_kubeconfig(local_cluster.kubeconfig)) as api:
        cluster = Cluster(local_cluster, api, namespace)
        try:
            yield cluster
        finally:
            await cluster.release_servers()


@pytest_asyncio.fixture
async def cluster(cluster_api: Cluster, tmp_path: pathlib.Path) -> AsyncIterator[Cluster]:
    """The test's namespace with its own running operator."""
    async with cluster_api.operator(tmp_path / "operator.log"):
        yield cluster_api


@pytest_asyncio.fixture
async def unmonitored_cluster(local_cluster: LocalCluster, cluster_api: Cluster,
                              tmp_path: pathlib.Path) -> AsyncIterator[Cluster]:
    """No prometheus-operator in this cluster: monitoring children must be skipped, with a reason.

    Only true until a test of this session installs the prometheus-operator CRDs (test_children.py
    runs this scenario first); after that the scenario cannot be made honestly and is skipped.
    """
    if serves_monitoring(local_cluster):
        pytest.skip("the prometheus-operator CRDs were installed earlier in this session (CRDs are cluster-wide)")
    async with cluster_api.operator(tmp_path / "operator.log"):
        yield cluster_api


@pytest_asyncio.fixture
async def monitored_cluster(prometheus_operator_crds: None, cluster: Cluster) -> AsyncIterator[Cluster]:
    """The prometheus-operator CRDs are installed: ServiceMonitor and PrometheusRule are made."""
    yield cluster
