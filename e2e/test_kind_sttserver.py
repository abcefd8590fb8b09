"""On a real kind cluster: the minimal SttServer becomes Ready, scales through the scale
subresource, and its children go away with it. Skips (with the reason) without Docker/kind."""

from __future__ import annotations

import uuid

import pytest
import yaml
from kind_cluster import SERVER_IMAGE, KindCluster

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_minimal_sttserver_lifecycle(kind_cluster: KindCluster) -> None:
    namespace = f"stt-e2e-{uuid.uuid4().hex[:6]}"
    kind_cluster.kubectl("create", "namespace", namespace)
    manifest = yaml.safe_load((kind_cluster.repo / "crds" / "samples" / "minimal-cpu.yaml").read_text())
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"].update({"image": SERVER_IMAGE, "imagePullPolicy": "Never",
                             "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}}})
    name = manifest["metadata"]["name"]
    try:
        with kind_cluster.operator(namespace=namespace):
            kind_cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))

            def ready() -> bool:
                stt = kind_cluster.get("sttserver", name, namespace=namespace) or {}
                return any(c.get("type") == "Ready" and c.get("status") == "True"
                           for c in (stt.get("status") or {}).get("conditions") or ())

            kind_cluster.wait_for(ready, what=f"SttServer {name} Ready", timeout=600)
            for kind in ("configmap", "deployment", "service"):
                assert kind_cluster.get(kind, name, namespace=namespace) is not None, kind

            kind_cluster.kubectl("scale", f"sttserver/{name}", "-n", namespace, "--replicas=2")
            kind_cluster.wait_for(
                lambda: ((kind_cluster.get("deployment", name, namespace=namespace) or {}).get("status") or {})
                .get("readyReplicas") == 2, what="2 ready replicas", timeout=600)
            assert kind_cluster.get("poddisruptionbudget", name, namespace=namespace) is not None

            kind_cluster.kubectl("delete", "sttserver", name, "-n", namespace, "--wait=true")
            kind_cluster.wait_for(lambda: kind_cluster.get("deployment", name, namespace=namespace) is None,
                                  what="the Deployment to be garbage-collected", timeout=300)
    finally:
        kind_cluster.kubectl("delete", "namespace", namespace, "--wait=false")
