"""Watches (resumption, selectors, timeouts, 410), CRD installs (discovery, schema, scale), the CLI entry."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import aiohttp
import kopf
import pytest
from localfleet_http import CONFIGMAPS, DEPLOYMENTS, Http, deployment
from stt_localfleet.apiserver import LocalApiServer

WIDGETS = "/apis/example.com/v1/namespaces/test/widgets"
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}, "scale": {
                               "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                               "labelSelectorPath": ".status.selector"}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {
                                   "replicas": {"type": "integer", "minimum": 0, "default": 1},
                                   "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                                   "mode": {"type": "string", "enum": ["a", "b"], "default": "a"}}},
                               "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}


async def _watch(http: Http, path: str, *, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with http.session.get(path) as resp:
        async def read() -> None:
            async for line in resp.content:
                events.append(json.loads(line))
                if len(events) >= count:
                    return
        await asyncio.wait_for(read(), timeout)
    return events


async def test_watch_resumes_from_resource_version(http: Http) -> None:
    _, listing = await http.get(DEPLOYMENTS)
    await http.post(DEPLOYMENTS, deployment("a"))
    await http.merge(f"{DEPLOYMENTS}/a", {"spec": {"replicas": 2}})
    await http.delete(f"{DEPLOYMENTS}/a")
    rv = listing["metadata"]["resourceVersion"]
    events = await _watch(http, f"{DEPLOYMENTS}?watch=true&resourceVersion={rv}", count=3)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1]["object"]["spec"]["replicas"] == 2


async def test_watch_streams_live_changes_through_label_selectors(http: Http) -> None:
    await http.post(DEPLOYMENTS, deployment("a", labels={"app": "a", "pick": "yes"}))
    watcher = asyncio.create_task(_watch(http, f"{DEPLOYMENTS}?watch=true&labelSelector=pick%3Dyes", count=3))
    await asyncio.sleep(0.1)  # let the stream open before the changes below
    await http.merge(f"{DEPLOYMENTS}/a", {"metadata": {"labels": {"pick": "no"}}})
    await http.merge(f"{DEPLOYMENTS}/a", {"metadata": {"labels": {"pick": "yes"}}})
    events = await watcher
    assert [e["type"] for e in events] == ["ADDED", "DELETED", "ADDED"]


async def test_watch_ends_after_timeout_seconds(http: Http) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.session.get(f"{CONFIGMAPS}?watch=true&timeoutSeconds=1") as resp:
        assert await resp.read() == b""
    assert 0.9 <= loop.time() - started < 3


async def test_watch_from_compacted_history_is_410(server: LocalApiServer, http: Http) -> None:
    for i in range(5):
        await http.post(CONFIGMAPS, {"metadata": {"name": f"cm{i}"}})
    while len(server.store.history) > 2:
        server.store.history.popleft()  # what compaction does to etcd's history
    events = await _watch(http, f"{CONFIGMAPS}?watch=true&resourceVersion=2", count=1)
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410


async def test_crd_install_serves_discovery_defaults_validation_and_scale(http: Http) -> None:
    code, crd = await http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    assert code == 201 and {c["type"] for c in crd["status"]["conditions"]} == {"Established", "NamesAccepted"}
    _, resources = await http.get("/apis/example.com/v1")
    names = {r["name"]: r for r in resources["resources"]}
    assert set(names) == {"widgets", "widgets/status", "widgets/scale"} and names["widgets"]["kind"] == "Widget"
    code, widget = await http.post(WIDGETS, {"apiVersion": "example.com/v1", "kind": "Widget",
                                             "metadata": {"name": "w"}, "spec": {"junk": 1}})
    assert code == 201 and widget["spec"] == {"replicas": 1, "mode": "a"}  # defaulted and pruned
    assert (await http.merge(f"{WIDGETS}/w", {"spec": {"ratio": 0.5}}))[0] == 200
    code, error = await http.merge(f"{WIDGETS}/w", {"spec": {"mode": "c", "replicas": -1, "ratio": 0}})
    assert (code, error["reason"]) == (422, "Invalid")
    assert {c["field"] for c in error["details"]["causes"]} == {"spec.mode", "spec.replicas", "spec.ratio"}
    await http.merge(f"{WIDGETS}/w/status", {"status": {"replicas": 1, "selector": "app=w"}})
    code, scale = await http.call("PUT", f"{WIDGETS}/w/scale", {"spec": {"replicas": 3}})
    assert code == 200 and scale["spec"]["replicas"] == 3 and scale["status"]["selector"] == "app=w"
    _, widget = await http.get(f"{WIDGETS}/w")
    assert widget["spec"]["replicas"] == 3 and widget["metadata"]["generation"] == 3
    code, _ = await http.call("PATCH", f"{WIDGETS}/w", {"spec": {"replicas": 2}},
                              content_type="application/strategic-merge-patch+json")
    assert code == 415  # as on a real server: no strategic merge for custom resources
    await http.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    assert (await http.get(f"{WIDGETS}/w"))[0] == 404


async def test_prometheus_operator_crds_install(server: LocalApiServer, http: Http) -> None:
    schemas = pathlib.Path(__file__).resolve().parents[2] / "schemas" / "prometheus-operator"
    names = server.install_crds(schemas)
    assert "servicemonitors.monitoring.coreos.com" in names
    _, resources = await http.get("/apis/monitoring.coreos.com/v1")
    assert {"servicemonitors", "prometheusrules"} <= {r["name"] for r in resources["resources"]}


async def test_kopf_reads_the_written_kubeconfig(server: LocalApiServer, tmp_path: pathlib.Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(server.write_kubeconfig(tmp_path / "kubeconfig")))
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    assert info is not None and info.server == server.url and info.token


def test_module_entry_point_serves_and_writes_kubeconfig(tmp_path: pathlib.Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen([sys.executable, "-m", "stt_localfleet.apiserver", "--port", "0",
                             "--kubeconfig", str(kubeconfig), "--namespace", "demo"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        assert kubeconfig.read_text().count(url) == 1

        async def probe() -> int:
            async with aiohttp.ClientSession() as session, session.get(f"{url}/api/v1/namespaces/demo") as r:
                return r.status
        assert asyncio.run(probe()) == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
