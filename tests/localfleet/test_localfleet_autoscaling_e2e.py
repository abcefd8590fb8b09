"""End to end on the local fleet: real load on real servers scales up, idleness scales down, drain holds.

The whole chain is real: the session's control plane (kube-apiserver, controller-manager,
scheduler), the process kubelet and the NodePort proxy, the operator installed with helm as a pod
under its chart's RBAC, and real `stt-server` processes with the bundled model. The test:

1. applies an SttServer with autoscaling (1..2 replicas, 2 sessions per replica, 1 s scrapes,
   a 15 s scale-down window) and waits for Ready;
2. runs 4 real-time speech streams through the NodePort: the operator must scale to 2 and the
   new pod must become Ready;
3. stops the load, then opens two long streams, one per pod (checked on each pod's
   /metrics.json): with one session per pod the operator must scale down to 1 while both long
   streams are still running, so one of them is on the pod being removed; both must end normally
   with every utterance's final (drain works), and the removed pod must be gone afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import time
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml
from local_cluster import LocalCluster, operator_installed, until_async
from stt_localfleet import podnet
from stt_localfleet.fleet import CRDS_DIR
from stt_localfleet.loadgen import LoadGenerator, OwnConnectionClient, wait_serving
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_kubeconfig, resource_path
from stt_operator.autoscaling.scraper import pod_targets
from stt_server.bench.workload import SENTENCES, compose, synthesize
from stt_server.client import WavAudio

# Overridable, to try another build of the sample against the same test.
SAMPLE = Path(os.environ.get("STT_TEST_DEMO_MANIFEST", CRDS_DIR / "samples" / "demo.yaml"))
T = TypeVar("T")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def manifests(namespace: str) -> list[dict[str, Any]]:
    """The demo sample, with the autoscaling this test needs (bounded to 2 replicas)."""
    docs = [d for d in yaml.safe_load_all(SAMPLE.read_text()) if d]
    for doc in docs:
        doc.setdefault("metadata", {})["namespace"] = namespace
        if doc.get("kind") == "SttServer":
            doc["spec"].get("service", {}).pop("nodePort", None)  # let the API server allocate one
            doc["spec"]["autoscaling"] = {
                "enabled": True, "minReplicas": 1, "maxReplicas": 2,
                "targetDecodePendingPerReplica": 8, "targetActiveSessionsPerReplica": 2,
                "scrapeIntervalSeconds": 1,
                "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0},
                             "scaleDown": {"stabilizationWindowSeconds": 15}},
            }
    return docs


async def sessions_per_pod(cluster: LocalCluster, api: KubeApi, namespace: str, token: str | None) -> dict[str, float]:
    """active_sessions of every ready pod, read from its control plane like the autoscaler does."""
    targets = pod_targets(await api.list(resource_path("v1", "pods", namespace=namespace)))
    out: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2),
                                     connector=podnet.aiohttp_connector(cluster.netns)) as http:
        for pod in targets:
            if pod.being_deleted or not pod.ready:
                continue
            async with http.get(f"http://{pod.ip}:{pod.http_port}/metrics.json", headers=headers) as resp:
                out[pod.name] = float((await resp.json())["metrics"]["active_sessions"])
    return out


async def test_load_scales_up_idleness_scales_down_and_the_removed_pod_drains(
        local_cluster: LocalCluster, sttserver_crd: None, namespace: str) -> None:
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} is not there yet")
    docs = manifests(namespace)
    name = next(d for d in docs if d["kind"] == "SttServer")["metadata"]["name"]
    # Synthesized up front: TTS is CPU work that must not compete with the servers later.
    texts = list(SENTENCES[:5])
    long_audio = compose(await asyncio.to_thread(synthesize, texts), texts=texts)
    values = [f"watchNamespaces={{{namespace}}}", "image.tag=dev"]
    async with contextlib.AsyncExitStack() as stack:
        # The operator in a namespace of its own, as a platform team installs it: its pod is no scrape target.
        operator_namespace = local_cluster.new_namespace("e2e-op")
        stack.callback(local_cluster.delete_namespace, operator_namespace)
        stack.enter_context(operator_installed(local_cluster, release="e2e-op", namespace=operator_namespace,
                                               values=values))
        api = await stack.enter_async_context(KubeApi(credentials_from_kubeconfig(local_cluster.kubeconfig)))
        fleet = local_cluster
        local_cluster.apply(docs, namespace=namespace)
        dep_path = resource_path("apps/v1", "deployments", namespace=namespace, name=name)
        stt_path = resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=namespace, name=name)

        async def ready() -> bool:
            conditions = ((await api.get(stt_path)).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        await until_async(fleet, api, namespace, ready, what="Ready", timeout=120)
        service = await api.get(resource_path("v1", "services", namespace=namespace, name=name))
        target = f"127.0.0.1:{next(p['nodePort'] for p in service['spec']['ports'] if p['name'] == 'grpc')}"
        deployment = await api.get(dep_path)
        token = await _control_token(api, deployment)

        await wait_serving(target, timeout=30)

        # 2) load -> scale up to 2, and the new pod becomes Ready
        load = LoadGenerator(target, workers=4)
        await load.start()

        async def two_ready() -> bool:
            dep = await api.get(dep_path)
            return dep["spec"]["replicas"] == 2 and (dep.get("status") or {}).get("readyReplicas") == 2
        await until_async(fleet, api, namespace, two_ready, what="scale-up to 2 ready pods", timeout=120)

        # 3) idleness: the load stops; then one long stream per pod, and the scale-down comes
        #    (after the 15 s window) while both are running
        await load.stop(timeout=0)  # cancel the load's streams (client side)

        async def idle() -> dict[str, float] | None:
            counts = await sessions_per_pod(fleet, api, namespace, token)
            return counts if len(counts) == 2 and not any(counts.values()) else None
        await until_async(fleet, api, namespace, idle, what="the load's sessions to close on both pods", timeout=20)
        # The proxy (another process) follows the EndpointSlice: wait until the slice lists both
        # pods ready, and a moment for its watch to deliver that, before our two connections arrive.
        async def slice_has_two() -> bool:
            slices = await api.list(resource_path("discovery.k8s.io/v1", "endpointslices", namespace=namespace))
            return sum(bool((e.get("conditions") or {}).get("ready")) for s in slices
                       for e in s.get("endpoints") or ()) == 2
        await until_async(fleet, api, namespace, slice_has_two, what="both pods in the EndpointSlice", timeout=20)
        await asyncio.sleep(1.0)
        clients = [OwnConnectionClient(target), OwnConnectionClient(target)]
        for client in clients:  # connect in turn: the proxy's round robin puts one on each pod
            await client.wait_ready(10)
        long_streams = [asyncio.create_task(c.stream(WavAudio(long_audio.pcm, 16000), realtime=True))
                        for c in clients]

        seen: list[dict[str, float]] = []

        async def one_each() -> dict[str, float] | None:
            seen.append(await sessions_per_pod(fleet, api, namespace, token))
            return seen[-1] if sorted(seen[-1].values()) == [1.0, 1.0] else None
        try:
            await until_async(fleet, api, namespace, one_each, what="one long stream on each pod", timeout=10)
        except AssertionError as exc:
            raise AssertionError(f"sessions per pod seen last: {seen[-3:]}") from exc

        async def scaled_down() -> float | None:
            return time.monotonic() if (await api.get(dep_path))["spec"]["replicas"] == 1 else None
        scaled_at = await until_async(fleet, api, namespace, scaled_down, what="scale-down to 1", timeout=60)
        assert not any(t.done() for t in long_streams), "the scale-down must happen while both streams run"

        outcomes = await asyncio.gather(*long_streams)
        for client in clients:
            await client.close()
        assert time.monotonic() > scaled_at
        for outcome in outcomes:
            assert outcome.error is None, f"a stream was cut: {outcome.error}"
            # The last utterance's final arrives after the scale-down: the drain let it finish.
            assert len(outcome.finals) >= len(texts) - 1, outcome.transcript  # VAD may join two
            assert "transcription" in outcome.transcript.lower(), outcome.transcript

        async def one_left() -> list[dict[str, Any]] | None:
            pods = [p for p in await api.list(resource_path("v1", "pods", namespace=namespace))
                    if p["metadata"]["name"].startswith(name + "-")]
            return pods if len(pods) == 1 else None
        left = await until_async(fleet, api, namespace, one_left, what="the removed pod to finish draining and go", timeout=60)
        removed = set(seen[-1]) - {left[0]["metadata"]["name"]}
        assert len(removed) == 1
        # The removed pod's own log: it drained with our stream open (SIGTERM came mid-stream).
        log = pod_log(local_cluster, namespace, removed.pop())
        drains = [int(m) for m in re.findall(r"draining.*?open_streams\W+(\d+)", log)]  # json or console
        assert drains and drains[0] >= 1, log[-2000:]
        events = await api.list(resource_path("v1", "events", namespace=namespace))
        rescales = [e["message"] for e in events if e.get("reason") == "SuccessfulRescale"]
        assert any(m.startswith("New size: 2") for m in rescales) and any(m.startswith("New size: 1") for m in rescales)


async def _control_token(api: KubeApi, deployment: dict[str, Any]) -> str | None:
    from stt_operator.autoscaling.timer import read_control_token

    return await read_control_token(api, copy.deepcopy(deployment), deployment["metadata"]["namespace"])


def pod_log(cluster: LocalCluster, namespace: str, pod: str) -> str:
    """The removed pod's log, as the kubelet kept it (the pod object is gone, so not `kubectl logs`)."""
    found = sorted(cluster.workdir.glob(f"pods/logs/{namespace}_{pod}_*/*.log"))  # <ns>_<pod>_<uid>/<container>.log
    assert found, f"no log of pod {namespace}/{pod} under {cluster.workdir / 'pods'}"
    return "\n".join(path.read_text(errors="replace") for path in found)
