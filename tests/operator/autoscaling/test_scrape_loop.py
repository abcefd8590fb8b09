"""The shared scrape loop: one pod LIST per namespace per round, no pass when no pod is Ready and
nothing changed, each SttServer at its own interval. No cluster: a fake API and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from stt_operator.autoscaling.behavior import History
from stt_operator.autoscaling.decision import AutoscalingPolicy, Decision, decide
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi
from stt_operator.autoscaling.scrape_loop import ScrapeLoop
from stt_operator.autoscaling.timer import AutoscalerState
from stt_operator.spec import SttServerSpec


def server(name: str, *, namespace: str = "ns", enabled: bool = True, interval: float = 15,
           generation: int = 1) -> dict[str, Any]:
    return {"apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": generation},
            "spec": {"image": "ghcr.io/stt-fleet/stt-server:0.1.0",
                     "autoscaling": {"enabled": enabled, "scrapeIntervalSeconds": interval}}}


def pod(owner: str, name: str, *, ready: bool, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"app.kubernetes.io/name": "stt-server",
                                                  "app.kubernetes.io/instance": owner}},
            "status": {"phase": phase, "podIP": "10.244.0.9",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class FakeApi:
    """Pods per namespace; counts every LIST."""

    def __init__(self) -> None:
        self.pods: dict[str, list[dict[str, Any]]] = {}
        self.lists: list[str] = []
        self.fail: ApiError | None = None

    async def list(self, path: str, *, labels: Mapping[str, str] | None = None,
                   keep: Callable[[dict[str, Any]], Any] | None = None) -> list[Any]:
        self.lists.append(path)
        if self.fail is not None:
            raise self.fail
        namespace = path.split("/namespaces/")[1].split("/")[0]
        return [p if keep is None else keep(p) for p in self.pods.get(namespace, [])
                if all(p["metadata"]["labels"].get(k) == v for k, v in (labels or {}).items())]


class Recorder:
    """Stands in for `autoscale_once`: records which SttServer got a pass, with which pods."""

    def __init__(self) -> None:
        self.passes: list[tuple[str, tuple[str, ...]]] = []
        self.deployment = True  # False: passes find no Deployment and decide nothing

    async def __call__(self, api: KubeApi, body: Mapping[str, Any], *, state: Any, spec: SttServerSpec,
                       post_event: Any, pods: Sequence[Mapping[str, Any]]) -> Decision | None:
        self.passes.append((spec.name, tuple(p["metadata"]["name"] for p in pods)))
        if not self.deployment:
            return None
        policy = AutoscalingPolicy(min_replicas=1, max_replicas=3, target_decode_pending=1)
        return decide((), current_replicas=1, policy=policy, history=History(), now=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _no_events(type_: str, reason: str, message: str) -> None:
    return None


@pytest.fixture
def setup() -> tuple[ScrapeLoop, FakeApi, Recorder, Clock]:
    api, recorder, clock = FakeApi(), Recorder(), Clock()
    return ScrapeLoop(api, autoscale=recorder, clock=clock), api, recorder, clock  # type: ignore[arg-type]


async def round_at(loop: ScrapeLoop, clock: Clock, now: float) -> None:
    clock.now = now
    await asyncio.gather(*await loop.start_due(now))


async def test_pods_are_listed_once_per_namespace_for_all_due_servers(setup: Any) -> None:
    loop, api, recorder, clock = setup
    api.pods = {"ns": [pod("a", "a-1", ready=True), pod("b", "b-1", ready=True), pod("b", "b-2", ready=True)],
                "other": [pod("c", "c-1", ready=True)]}
    for name, namespace in (("a", "ns"), ("b", "ns"), ("c", "other")):
        loop.register(server(name, namespace=namespace), state=AutoscalerState(), post_event=_no_events)
    await round_at(loop, clock, 1000.0)
    assert sorted(api.lists) == ["/api/v1/namespaces/ns/pods", "/api/v1/namespaces/other/pods"]
    assert sorted(recorder.passes) == [("a", ("a-1",)), ("b", ("b-1", "b-2")), ("c", ("c-1",))]


async def test_no_ready_pod_means_one_pass_then_none_until_the_pods_change(setup: Any) -> None:
    loop, api, recorder, clock = setup
    api.pods = {"ns": [pod("a", "a-1", ready=False, phase="Pending")]}
    loop.register(server("a"), state=AutoscalerState(), post_event=_no_events)
    await round_at(loop, clock, 1000.0)
    assert recorder.passes == [("a", ("a-1",))]  # the first pass writes "no metrics" to status
    await round_at(loop, clock, 1015.0)
    await round_at(loop, clock, 1030.0)
    assert recorder.passes == [("a", ("a-1",))]  # nothing to learn: skipped
    assert len(api.lists) == 3  # still one cheap LIST per interval to notice a change

    api.pods["ns"].append(pod("a", "a-2", ready=False, phase="Pending"))  # scaled while Pending
    await round_at(loop, clock, 1045.0)
    assert recorder.passes[-1] == ("a", ("a-1", "a-2"))

    api.pods["ns"] = [pod("a", "a-1", ready=True), pod("a", "a-2", ready=False)]  # one Ready: scrape it
    await round_at(loop, clock, 1060.0)
    await round_at(loop, clock, 1075.0)
    assert recorder.passes[-2:] == [("a", ("a-1", "a-2"))] * 2  # with a Ready pod, every interval


async def test_passes_go_on_until_one_finds_the_deployment(setup: Any) -> None:
    loop, api, recorder, clock = setup
    api.pods = {"ns": []}  # no pods can be made (say, a missing RuntimeClass)
    recorder.deployment = False
    loop.register(server("a"), state=AutoscalerState(), post_event=_no_events)
    await round_at(loop, clock, 1000.0)
    await round_at(loop, clock, 1015.0)
    assert len(recorder.passes) == 2  # nothing decided, nothing written yet: try again
    recorder.deployment = True
    await round_at(loop, clock, 1030.0)
    await round_at(loop, clock, 1045.0)
    assert len(recorder.passes) == 3  # the pass that wrote status counts; then skipped


async def test_a_new_generation_without_ready_pods_gets_a_pass(setup: Any) -> None:
    loop, api, recorder, clock = setup
    api.pods = {"ns": []}
    body = server("a")
    loop.register(body, state=AutoscalerState(), post_event=_no_events)
    await round_at(loop, clock, 1000.0)
    await round_at(loop, clock, 1015.0)
    assert len(recorder.passes) == 1
    body["metadata"]["generation"] = 2  # kopf updates the live body in place
    await round_at(loop, clock, 1030.0)
    assert len(recorder.passes) == 2


async def test_each_server_keeps_its_own_interval_and_disabled_ones_cost_nothing(setup: Any) -> None:
    loop, api, recorder, clock = setup
    api.pods = {"ns": [pod("fast", "f-1", ready=True), pod("slow", "s-1", ready=True)]}
    loop.register(server("fast", interval=5), state=AutoscalerState(), post_event=_no_events)
    loop.register(server("slow", interval=15), state=AutoscalerState(), post_event=_no_events)
    loop.register(server("off", enabled=False), state=AutoscalerState(), post_event=_no_events)
    for now in (1000.0, 1005.0, 1010.0, 1015.0):
        await round_at(loop, clock, now)
    names = [name for name, _ in recorder.passes]
    assert names.count("fast") == 4 and names.count("slow") == 2 and "off" not in names
    assert len(api.lists) == 4  # "off" alone never lists


async def test_a_failed_list_is_reported_once_and_retried(setup: Any) -> None:
    loop, api, recorder, clock = setup
    posted: list[tuple[str, str, str]] = []

    async def post(type_: str, reason: str, message: str) -> None:
        posted.append((type_, reason, message))
    loop.register(server("a"), state=AutoscalerState(), post_event=post)
    api.fail = ApiError(503, "unavailable")
    await round_at(loop, clock, 1000.0)
    await round_at(loop, clock, 1015.0)
    assert posted == [("Warning", "FailedComputeMetricsReplicas", "503: unavailable")]
    api.fail, api.pods = None, {"ns": [pod("a", "a-1", ready=True)]}
    await round_at(loop, clock, 1030.0)
    assert recorder.passes == [("a", ("a-1",))]


async def test_run_serves_registrations_until_the_last_one_goes() -> None:
    api, recorder = FakeApi(), Recorder()
    api.pods = {"ns": [pod("a", "a-1", ready=True)]}
    loop = ScrapeLoop(api, autoscale=recorder)  # type: ignore[arg-type]
    key = loop.register(server("a", interval=1), state=AutoscalerState(), post_event=_no_events)
    task = asyncio.create_task(loop.run())
    async with asyncio.timeout(10):
        while len(recorder.passes) < 2:  # the first pass at once, the second one interval later
            await asyncio.sleep(0.05)
    await loop.unregister(key)
    async with asyncio.timeout(5):
        await task  # ends by itself, woken or at its next due check
    assert loop.closed


async def test_servers_due_within_a_second_share_a_round(setup: Any) -> None:
    loop, api, recorder, clock = setup
    api.pods = {"ns": [pod("a", "a-1", ready=True), pod("b", "b-1", ready=True)]}
    loop.register(server("a"), state=AutoscalerState(), post_event=_no_events)
    clock.now = 1000.5  # created half a second later
    loop.register(server("b"), state=AutoscalerState(), post_event=_no_events)
    await round_at(loop, clock, 1000.0 + 15)
    await round_at(loop, clock, 1000.0 + 30)
    assert len(api.lists) == 2 and len(recorder.passes) == 4  # one LIST per round for both
