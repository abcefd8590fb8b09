"""The API server rules the operator depends on: resourceVersion, generation, status, 409s, finalizers, GC."""

from __future__ import annotations

from localfleet_http import CONFIGMAPS, DEPLOYMENTS, Http, deployment
from stt_localfleet.apiserver import LocalApiServer


async def test_resource_version_increases_and_noop_writes_keep_it(http: Http) -> None:
    code, created = await http.post(DEPLOYMENTS, deployment())
    assert code == 201
    rv1 = int(created["metadata"]["resourceVersion"])
    assert created["metadata"]["uid"] and created["metadata"]["creationTimestamp"]
    _, patched = await http.merge(f"{DEPLOYMENTS}/web", {"spec": {"replicas": 2}})
    assert int(patched["metadata"]["resourceVersion"]) > rv1
    _, same = await http.merge(f"{DEPLOYMENTS}/web", {"spec": {"replicas": 2}})
    assert same["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]


async def test_generation_bumps_on_spec_changes_only(http: Http) -> None:
    await http.post(DEPLOYMENTS, deployment())
    _, labelled = await http.merge(f"{DEPLOYMENTS}/web", {"metadata": {"labels": {"extra": "1"}}})
    assert labelled["metadata"]["generation"] == 1
    _, status = await http.merge(f"{DEPLOYMENTS}/web/status", {"status": {"readyReplicas": 1}})
    assert status["metadata"]["generation"] == 1
    _, scaled = await http.merge(f"{DEPLOYMENTS}/web", {"spec": {"replicas": 3}})
    assert scaled["metadata"]["generation"] == 2


async def test_status_subresource_separates_writers(http: Http) -> None:
    body = deployment()
    body["status"] = {"readyReplicas": 5}
    _, created = await http.post(DEPLOYMENTS, body)
    assert "status" not in created  # dropped on create, as the Deployment strategy does
    _, with_status = await http.merge(f"{DEPLOYMENTS}/web/status", {"status": {"readyReplicas": 1},
                                                                     "spec": {"replicas": 9}})
    assert with_status["status"] == {"readyReplicas": 1} and with_status["spec"]["replicas"] == 1
    _, main = await http.merge(f"{DEPLOYMENTS}/web", {"status": {"readyReplicas": 7}, "spec": {"replicas": 2}})
    assert main["status"] == {"readyReplicas": 1} and main["spec"]["replicas"] == 2


async def test_conflicts_and_not_found(http: Http) -> None:
    _, created = await http.post(DEPLOYMENTS, deployment())
    code, body = await http.post(DEPLOYMENTS, deployment())
    assert (code, body["reason"]) == (409, "AlreadyExists")
    await http.merge(f"{DEPLOYMENTS}/web", {"spec": {"replicas": 2}})
    stale = {**created, "spec": {**created["spec"], "replicas": 4}}
    code, body = await http.put(f"{DEPLOYMENTS}/web", stale)
    assert (code, body["reason"]) == (409, "Conflict")
    code, _ = await http.merge(f"{DEPLOYMENTS}/web", {"metadata": {"resourceVersion": "1"}, "spec": {}})
    assert code == 409
    code, body = await http.get(f"{DEPLOYMENTS}/nope")
    assert (code, body["reason"], body["kind"]) == (404, "NotFound", "Status")
    code, _ = await http.post("/api/v1/namespaces/missing/configmaps", {"metadata": {"name": "x"}})
    assert code == 404


async def test_finalizers_hold_deletion_until_removed(http: Http) -> None:
    await http.post(CONFIGMAPS, {"metadata": {"name": "cm", "finalizers": ["example.com/hold"]}})
    code, deleting = await http.delete(f"{CONFIGMAPS}/cm")
    assert code == 200 and deleting["metadata"]["deletionTimestamp"]
    assert (await http.get(f"{CONFIGMAPS}/cm"))[0] == 200
    code, _ = await http.call("PATCH", f"{CONFIGMAPS}/cm", [
        {"op": "test", "path": "/metadata/resourceVersion", "value": deleting["metadata"]["resourceVersion"]},
        {"op": "remove", "path": "/metadata/finalizers/0"}], content_type="application/json-patch+json")
    assert code == 200
    assert (await http.get(f"{CONFIGMAPS}/cm"))[0] == 404


async def test_json_patch_failed_test_is_422(http: Http) -> None:
    await http.post(CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    code, _ = await http.call("PATCH", f"{CONFIGMAPS}/cm", [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "replace", "path": "/data/a", "value": "2"}], content_type="application/json-patch+json")
    assert code == 422
    assert (await http.get(f"{CONFIGMAPS}/cm"))[1]["data"] == {"a": "1"}


async def test_strategic_merge_merges_containers_by_name(http: Http) -> None:
    await http.post(DEPLOYMENTS, deployment())
    code, body = await http.call("PATCH", f"{DEPLOYMENTS}/web", {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "side:1"}]}}}}, content_type="application/strategic-merge-patch+json")
    assert code == 200
    assert [c["name"] for c in body["spec"]["template"]["spec"]["containers"]] == ["c", "sidecar"]


async def test_garbage_collection_follows_owner_uids(http: Http) -> None:
    _, owner = await http.post(CONFIGMAPS, {"metadata": {"name": "owner"}})
    _, other = await http.post(CONFIGMAPS, {"metadata": {"name": "other"}})

    def ref(obj: dict) -> dict:
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": obj["metadata"]["name"],
                "uid": obj["metadata"]["uid"]}
    await http.post(CONFIGMAPS, {"metadata": {"name": "child", "ownerReferences": [ref(owner)]}})
    await http.post(CONFIGMAPS, {"metadata": {"name": "shared", "ownerReferences": [ref(owner), ref(other)]}})
    await http.post(CONFIGMAPS, {"metadata": {"name": "unrelated", "ownerReferences": [ref(other)]}})
    await http.delete(f"{CONFIGMAPS}/owner")
    _, listing = await http.get(CONFIGMAPS)
    assert sorted(i["metadata"]["name"] for i in listing["items"]) == ["other", "shared", "unrelated"]
    # A dependent written after its owner is gone (a late create racing the deletion) is collected too.
    code, _ = await http.post(CONFIGMAPS, {"metadata": {"name": "late", "ownerReferences": [ref(owner)]}})
    assert code == 201
    assert (await http.get(f"{CONFIGMAPS}/late"))[0] == 404


async def test_orphan_propagation_keeps_dependents(http: Http) -> None:
    _, owner = await http.post(CONFIGMAPS, {"metadata": {"name": "owner"}})
    await http.post(CONFIGMAPS, {"metadata": {"name": "child", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]}})
    await http.delete(f"{CONFIGMAPS}/owner", {"propagationPolicy": "Orphan"})
    code, child = await http.get(f"{CONFIGMAPS}/child")
    assert code == 200 and child["metadata"]["ownerReferences"] == []


async def test_list_filters_by_label_selector(http: Http) -> None:
    await http.post(DEPLOYMENTS, deployment("a", labels={"tier": "x", "app": "a"}))
    await http.post(DEPLOYMENTS, deployment("b", labels={"tier": "y", "app": "b"}))
    _, listing = await http.get(f"{DEPLOYMENTS}?labelSelector=tier%20in%20(x,z)")
    assert [i["metadata"]["name"] for i in listing["items"]] == ["a"]
    _, listing = await http.get(f"{DEPLOYMENTS}?labelSelector=tier!%3Dx")
    assert [i["metadata"]["name"] for i in listing["items"]] == ["b"]


async def test_deployment_scale_subresource(http: Http) -> None:
    await http.post(DEPLOYMENTS, deployment())
    code, scale = await http.merge(f"{DEPLOYMENTS}/web/scale", {"spec": {"replicas": 4}})
    assert code == 200 and scale["spec"]["replicas"] == 4 and scale["status"]["selector"] == "app=web"
    _, dep = await http.get(f"{DEPLOYMENTS}/web")
    assert dep["spec"]["replicas"] == 4 and dep["metadata"]["generation"] == 2


async def test_node_bound_pods_are_deleted_gracefully(http: Http) -> None:
    pods = "/api/v1/namespaces/test/pods"
    await http.post(pods, {"metadata": {"name": "p"}, "spec": {"nodeName": "local", "containers": []}})
    _, terminating = await http.delete(f"{pods}/p")
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    assert (await http.get(f"{pods}/p"))[0] == 200
    await http.delete(f"{pods}/p", {"gracePeriodSeconds": 0})
    assert (await http.get(f"{pods}/p"))[0] == 404


async def test_injected_faults_answer_then_clear(server: LocalApiServer, http: Http) -> None:
    await http.post(CONFIGMAPS, {"metadata": {"name": "cm"}})
    fault = server.faults.add(method="PATCH", path=r"/configmaps/cm$", status=409, times=2)
    codes = [(await http.merge(f"{CONFIGMAPS}/cm", {"data": {"k": "v"}}))[0] for _ in range(3)]
    assert codes == [409, 409, 200] and fault.hits == 2
    server.faults.add(method="GET", path=r"/configmaps/cm$", status=500)
    code, body = await http.get(f"{CONFIGMAPS}/cm")
    assert (code, body["code"]) == (500, 500)


async def test_hanging_fault_holds_requests_until_the_client_gives_up(server: LocalApiServer, http: Http) -> None:
    import asyncio

    import aiohttp

    server.faults.add(method="GET", path=r"/configmaps$", hang_sec=30)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with http.session.get(CONFIGMAPS, timeout=aiohttp.ClientTimeout(total=0.3)):
            raise AssertionError("the hanging request was answered")
    except TimeoutError:
        pass
    assert loop.time() - started < 2
    assert (await http.get(CONFIGMAPS))[0] == 200  # the fault was used up by the first request


async def test_faults_over_http_for_other_processes(http: Http) -> None:
    code, plan = await http.post("/_localfleet/faults", {"method": "GET", "path": "/configmaps$", "status": 503})
    assert code == 201 and plan["faults"][0]["times"] == 1
    assert (await http.get(CONFIGMAPS))[0] == 503
    _, plan = await http.get("/_localfleet/faults")
    assert plan["faults"][0]["hits"] == 1
    assert (await http.post("/_localfleet/faults", {"path": "x"}))[0] == 400
    await http.post("/_localfleet/faults", {"method": "GET", "path": "/configmaps$", "times": 5})
    await http.delete("/_localfleet/faults")
    assert (await http.get(CONFIGMAPS))[0] == 200
