"""`apply_child` against the local API server: what it writes, and when it writes nothing."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_kubeconfig, resource_path
from stt_localfleet.apiserver import LocalApiServer
from stt_operator.reconcile import apply_child, last_applied_of

NS = "stt"
LABELS = {"app": "x"}
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": NS},
    "spec": {"replicas": 1, "selector": {"matchLabels": LABELS},
             "template": {"metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "s", "image": "i:1"}]}}},
}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[KubeApi]:
    async with LocalApiServer(namespaces=[NS]) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        async with KubeApi(credentials_from_kubeconfig(kubeconfig)) as client:
            yield client


async def test_replicas_carried_over_from_the_autoscaler_write_nothing(api: KubeApi) -> None:
    assert (await apply_child(api, DEPLOYMENT)).action == "created"
    path = resource_path("apps/v1", "deployments", namespace=NS, name="x")
    await api.merge_patch(path, {"spec": {"replicas": 3}})  # the autoscaler
    before = (await api.get(path))["metadata"]["resourceVersion"]

    # The reconciler carries the live count over: nothing to change, so no write and no Event.
    carried = copy.deepcopy(DEPLOYMENT)
    carried["spec"]["replicas"] = 3
    assert (await apply_child(api, carried)).action == "unchanged"
    assert (await api.get(path))["metadata"]["resourceVersion"] == before

    # A real change is written, and the record catches up with it.
    changed = copy.deepcopy(carried)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "i:2"
    applied = await apply_child(api, changed)
    assert applied.action == "updated"
    assert (last_applied_of(applied.obj) or {})["spec"]["replicas"] == 3
