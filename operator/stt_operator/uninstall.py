"""`stt-operator release-finalizers`: make SttServers deletable without a running operator.

Earlier versions of the operator had a kopf timer (resync) and daemon (autoscaler) per object, so kopf put its
finalizer on every SttServer; current ones put none (and kopf removes the old one from each object
it processes). Where no operator runs any more, nobody removes it, and `kubectl delete stt` hangs. The chart's pre-delete hook runs this command:
first it scales the operator's Deployment to zero and waits for its pods to be gone (a running
operator would put the finalizer straight back), then it removes kopf's finalizer from every
SttServer in the watched namespaces. Children are owned by their SttServer, so once it is deleted
the garbage collector removes them; nothing else needs the operator.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Final

from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, resource_path

KOPF_FINALIZER: Final = "kopf.zalando.org/KopfFinalizerMarker"
API_VERSION: Final = "sttfleet.io/v1alpha1"
logger = logging.getLogger(__name__)


async def stop_deployment(api: KubeApi, *, namespace: str, name: str, timeout: float = 120.0) -> None:
    """Scale the operator's Deployment to zero and wait until none of its pods is left."""
    path = resource_path("apps/v1", "deployments", namespace=namespace, name=name)
    deployment = await api.get_or_none(path)
    if deployment is None:
        return
    await api.merge_patch(path, {"spec": {"replicas": 0}})
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    deadline = time.monotonic() + timeout
    while await api.list(resource_path("v1", "pods", namespace=namespace), labels=labels):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pods of deployment {namespace}/{name} were still there after {timeout:g} s")
        await asyncio.sleep(1.0)


async def release_finalizers(api: KubeApi, *, namespaces: Sequence[str]) -> list[str]:
    """Remove kopf's finalizer from every SttServer in `namespaces` (all when empty); returns ns/name of each."""
    paths = [resource_path(API_VERSION, "sttservers", namespace=ns) for ns in namespaces] or \
        [resource_path(API_VERSION, "sttservers")]
    released = []
    for path in paths:
        for item in await api.list(path):
            meta = item["metadata"]
            if KOPF_FINALIZER in (meta.get("finalizers") or ()):
                await _remove(api, meta["namespace"], meta["name"])
                released.append(f"{meta['namespace']}/{meta['name']}")
    return released


async def _remove(api: KubeApi, namespace: str, name: str, *, attempts: int = 5) -> None:
    path = resource_path(API_VERSION, "sttservers", namespace=namespace, name=name)
    for _ in range(attempts):
        body: dict[str, Any] | None = await api.get_or_none(path)
        if body is None:
            return
        finalizers = list(body["metadata"].get("finalizers") or ())
        if KOPF_FINALIZER not in finalizers:
            return
        finalizers.remove(KOPF_FINALIZER)
        try:  # the resourceVersion guards other finalizers added in between
            await api.merge_patch(path, {"metadata": {"finalizers": finalizers,
                                                      "resourceVersion": body["metadata"]["resourceVersion"]}})
            return
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
    raise RuntimeError(f"could not remove kopf's finalizer from {namespace}/{name}: kept conflicting")


async def run(api: KubeApi, *, namespaces: Sequence[str], deployment: str | None) -> list[str]:
    """The hook's work: stop the operator (`namespace/name`), then release every SttServer."""
    if deployment:
        dep_namespace, _, dep_name = deployment.rpartition("/")
        await stop_deployment(api, namespace=dep_namespace, name=dep_name)
    released = await release_finalizers(api, namespaces=namespaces)
    logger.info("released %d SttServer(s): %s", len(released), ", ".join(released) or "none")
    return released
