"""The node agent in the session cluster: real controllers and scheduler, pods run by the kubelet.

Each test works in a namespace of its own and waits on the API's view (conditions, states, Events),
never on fixed sleeps. The pods are tiny Python programs run from the `stt-operator` "image" (the
host's venv), whose files the test reads back through a hostPath volume under its tmp_path.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest
from local_cluster import LocalCluster, start_cluster, stop_cluster, wait_until

pytestmark = pytest.mark.slow

# Serves HTTP on the pod's own address; /healthz answers 200 while the file /tmp/unhealthy is absent.
WEB = textwrap.dedent("""\
    import http.server, os
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            bad = self.path == "/healthz" and os.path.exists("/tmp/unhealthy")
            self.send_response(500 if bad else 200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a): pass
    http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
""")
# Authenticates with the projected token as in-cluster clients do, and says who it is.
WHOAMI = textwrap.dedent("""\
    import json, os, ssl, urllib.request
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    url = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
    request = urllib.request.Request(url + "/apis/authentication.k8s.io/v1/selfsubjectreviews", method="POST",
        data=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode(),
        headers={"Authorization": "Bearer " + open(sa + "/token").read(), "Content-Type": "application/json"})
    context = ssl.create_default_context(cafile=sa + "/ca.crt")
    review = json.load(urllib.request.urlopen(request, context=context))
    who = review["status"]["userInfo"]["username"]
    open("/out/whoami", "w").write(who + "\\n" + open(sa + "/namespace").read())
    # No cluster DNS: the kubelet-managed /etc/hosts leads kubernetes.default.svc to the API server.
    import socket
    open("/out/resolved", "w").write(socket.gethostbyname("kubernetes.default.svc") + " "
                                     + os.environ["KUBERNETES_SERVICE_HOST"])
    raise SystemExit(0 if who == "system:serviceaccount:" + open(sa + "/namespace").read() + ":default" else 1)
""")
# Notes SIGTERM (after the preStop hook wrote its file) and exits a moment later.
GRACEFUL = textwrap.dedent("""\
    import signal, sys, time
    def term(*_):
        open("/out/sigterm", "w").write(str(time.time())); time.sleep(0.5); sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    open("/out/started", "w").write("yes")
    while True: time.sleep(1)
""")


def python_container(name: str, program: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "stt-operator:dev", "command": ["python3", "-c", program], **extra}


def pod_manifest(name: str, containers: list[dict[str, Any]], *, out: Path | None = None,
                 **spec: Any) -> dict[str, Any]:
    volumes = [{"name": "out", "hostPath": {"path": str(out), "type": "DirectoryOrCreate"}}] if out else []
    for container in containers:
        if out:
            container.setdefault("volumeMounts", []).append({"name": "out", "mountPath": "/out"})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": containers, "volumes": volumes, **spec}}


def pod_state(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get("pod", name, namespace=namespace) or {}


def container_status(pod: dict[str, Any], index: int = 0) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[index] if len(statuses) > index else {}


def condition(pod: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (pod.get("status") or {}).get("conditions") or () if c["type"] == kind), {})


def events(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return [e for e in cluster.get("events", namespace=namespace) if e["involvedObject"].get("name") == name]


def test_a_deployment_becomes_ready_and_its_endpoints_are_published(local_cluster: LocalCluster,
                                                                   namespace: str) -> None:
    labels = {"app": "web"}
    container = python_container(
        "web", WEB, ports=[{"name": "http", "containerPort": 8080}],
        env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        livenessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 2})
    local_cluster.apply([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
    ], namespace=namespace)

    def available() -> dict[str, Any] | None:
        dep = local_cluster.get("deployment", "web", namespace=namespace) or {}
        return dep if (dep.get("status") or {}).get("availableReplicas") == 2 else None

    wait_until(available, what="Deployment web with 2 available replicas", timeout=60)
    pods = local_cluster.get("pods", namespace=namespace, selector="app=web")
    assert len(pods) == 2
    for pod in pods:
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"  # the real controllers made it
        assert pod["spec"]["nodeName"] == "localfleet" and pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"].startswith("10.244.") and pod["status"]["podIP"] != pod["status"]["hostIP"]
        assert container_status(pod)["containerID"].startswith("localfleet://")
    ips = {p["status"]["podIP"] for p in pods}

    def ready_endpoints() -> set[str] | None:
        slices = local_cluster.get("endpointslices", namespace=namespace,
                                   selector="kubernetes.io/service-name=web")
        found = {a for s in slices for e in s.get("endpoints") or () if (e.get("conditions") or {}).get("ready")
                 for a in e["addresses"]}
        return found if found == ips else None

    wait_until(ready_endpoints, what="the EndpointSlice listing both pod IPs as ready", timeout=30)
    reasons = {e["reason"] for e in events(local_cluster, namespace, pods[0]["metadata"]["name"])}
    assert {"Scheduled", "Pulled", "Created", "Started"} <= reasons


def test_the_projected_token_authenticates_from_inside_the_pod(local_cluster: LocalCluster, namespace: str,
                                                               tmp_path: Path) -> None:
    local_cluster.apply(pod_manifest("whoami", [python_container("whoami", WHOAMI)], out=tmp_path,
                                     restartPolicy="Never"), namespace=namespace)
    pod = wait_until(lambda: (p := pod_state(local_cluster, namespace, "whoami")).get("status", {}).get("phase")
                     in ("Succeeded", "Failed") and p, what="pod whoami to finish", timeout=60)
    assert (tmp_path / "whoami").read_text() == f"system:serviceaccount:{namespace}:default\n{namespace}"
    resolved, api_host = (tmp_path / "resolved").read_text().split()
    assert resolved == api_host
    assert pod["status"]["phase"] == "Succeeded"
    assert container_status(pod)["state"]["terminated"]["reason"] == "Completed"


def test_a_gpu_pod_stays_pending_with_the_schedulers_reason(local_cluster: LocalCluster, namespace: str) -> None:
    container = python_container("gpu", "pass", resources={"limits": {"nvidia.com/gpu": "1"}})
    local_cluster.apply(pod_manifest("gpu", [container]), namespace=namespace)
    scheduled = wait_until(lambda: condition(pod_state(local_cluster, namespace, "gpu"), "PodScheduled"),
                           what="the scheduler's verdict on pod gpu", timeout=30)
    assert scheduled["status"] == "False" and scheduled["reason"] == "Unschedulable"
    assert "nvidia.com/gpu" in scheduled["message"]
    pod = pod_state(local_cluster, namespace, "gpu")
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]


def test_deleting_a_pod_runs_prestop_then_sigterm(local_cluster: LocalCluster, namespace: str,
                                                  tmp_path: Path) -> None:
    container = python_container("app", GRACEFUL, lifecycle={
        "postStart": {"exec": {"command": ["python3", "-c", "open('/out/poststart', 'w').write('yes')"]}},
        "preStop": {"exec": {"command": [
            "python3", "-c", "import time; open('/out/prestop', 'w').write(str(time.time()))"]}}})
    local_cluster.apply(pod_manifest("graceful", [container], out=tmp_path, terminationGracePeriodSeconds=20),
                        namespace=namespace)
    wait_until(lambda: condition(pod_state(local_cluster, namespace, "graceful"), "Ready").get("status") == "True",
               what="pod graceful Ready", timeout=60)
    assert (tmp_path / "poststart").exists(), "Ready only after the postStart hook"
    wait_until(lambda: (tmp_path / "started").exists(), what="the pod's SIGTERM handler", timeout=30)
    local_cluster.kubectl("delete", "pod", "graceful", "-n", namespace, "--wait=true", "--timeout=60s")
    assert float((tmp_path / "prestop").read_text()) <= float((tmp_path / "sigterm").read_text())
    assert pod_state(local_cluster, namespace, "graceful") == {}
    reasons = [e["reason"] for e in events(local_cluster, namespace, "graceful")]
    assert "Killing" in reasons


def test_a_crashing_container_backs_off(local_cluster: LocalCluster, namespace: str) -> None:
    local_cluster.apply(pod_manifest("crash", [python_container("crash", "raise SystemExit(3)")]), namespace=namespace)

    def backing_off() -> dict[str, Any] | None:
        status = container_status(pod_state(local_cluster, namespace, "crash"))
        waiting = (status.get("state") or {}).get("waiting") or {}
        return status if waiting.get("reason") == "CrashLoopBackOff" and status.get("restartCount", 0) > 0 else None

    status = wait_until(backing_off, what="pod crash in CrashLoopBackOff", timeout=60)
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    pod = pod_state(local_cluster, namespace, "crash")
    assert pod["status"]["phase"] == "Running"  # restartPolicy Always: restarting
    assert "BackOff" in {e["reason"] for e in events(local_cluster, namespace, "crash")}


def test_a_failing_liveness_probe_restarts_the_container(local_cluster: LocalCluster, namespace: str) -> None:
    container = python_container(
        "web", WEB, env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
        startupProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 30},
        livenessProbe={"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2},
        readinessProbe={"exec": {"command": ["python3", "-c", "import os; assert not os.path.exists('/tmp/unhealthy')"]},
                        "periodSeconds": 1})
    local_cluster.apply(pod_manifest("live", [container], volumes=[{"name": "tmp", "emptyDir": {}}]),
                        namespace=namespace)
    wait_until(lambda: condition(pod_state(local_cluster, namespace, "live"), "Ready").get("status") == "True",
               what="pod live Ready", timeout=60)
    pod = pod_state(local_cluster, namespace, "live")
    volume_dir = local_cluster.workdir / "pods" / "pods" / pod["metadata"]["uid"] / "volumes" / "tmp"
    (volume_dir / "unhealthy").write_text("x")  # what the container sees as /tmp/unhealthy
    wait_until(lambda: container_status(pod_state(local_cluster, namespace, "live")).get("restartCount", 0) >= 1,
               what="the liveness restart", timeout=60)
    reasons = [e["message"] for e in events(local_cluster, namespace, "live") if e["reason"] == "Killing"]
    assert any("failed liveness probe, will be restarted" in m for m in reasons)


def test_init_containers_run_first_and_in_order(local_cluster: LocalCluster, namespace: str,
                                                tmp_path: Path) -> None:
    step = "import os, sys; open('/work/steps', 'a').write(os.environ['STEP'] + chr(10))"
    shared = [{"name": "work", "mountPath": "/work"}]
    inits = [python_container(f"init-{n}", step, env=[{"name": "STEP", "value": f"init-{n}"}],
                              volumeMounts=list(shared)) for n in (1, 2)]
    main = python_container("main", "import shutil; shutil.copy('/work/steps', '/out/steps')",
                            volumeMounts=list(shared))
    manifest = pod_manifest("inits", [main], out=tmp_path, restartPolicy="Never")
    manifest["spec"]["initContainers"] = inits
    manifest["spec"]["volumes"].append({"name": "work", "emptyDir": {}})
    local_cluster.apply(manifest, namespace=namespace)
    pod = wait_until(lambda: (p := pod_state(local_cluster, namespace, "inits")).get("status", {}).get("phase")
                     in ("Succeeded", "Failed") and p, what="pod inits to finish", timeout=60)
    assert pod["status"]["phase"] == "Succeeded"
    assert (tmp_path / "steps").read_text() == "init-1\ninit-2\n"
    assert condition(pod, "Initialized")["status"] == "True"
    assert [s["state"]["terminated"]["reason"] for s in pod["status"]["initContainerStatuses"]] == ["Completed"] * 2


def test_an_image_that_is_not_local_says_so(local_cluster: LocalCluster, namespace: str) -> None:
    local_cluster.apply(pod_manifest("nginx", [{"name": "nginx", "image": "nginx:1.27"}]), namespace=namespace)

    def waiting() -> dict[str, Any] | None:
        state = container_status(pod_state(local_cluster, namespace, "nginx")).get("state") or {}
        return state.get("waiting") if (state.get("waiting") or {}).get("reason") == "ImageNotLocal" else None

    reason = wait_until(waiting, what="pod nginx waiting with ImageNotLocal", timeout=30)
    assert reason["message"] == ("image nginx:1.27 is not one the local fleet can run: only *stt-server* and "
                                 "*stt-operator* images map to local programs")
    assert pod_state(local_cluster, namespace, "nginx")["status"]["phase"] == "Pending"


def test_the_node_is_registered_with_a_fresh_lease(local_cluster: LocalCluster) -> None:
    node = local_cluster.get("node", "localfleet")
    assert condition(node, "Ready")["status"] == "True"
    assert "nvidia.com/gpu" not in node["status"]["allocatable"]
    lease = local_cluster.get("lease", "localfleet", namespace="kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "localfleet" and lease["spec"]["leaseDurationSeconds"] == 40
    first = lease["spec"]["renewTime"]
    wait_until(lambda: local_cluster.get("lease", "localfleet", namespace="kube-node-lease")["spec"]["renewTime"]
               != first, what="a Lease renewal", timeout=25)
    assert json.dumps(node["status"]["nodeInfo"])  # the kubelet's nodeInfo is there


def test_stopping_the_node_stops_its_pods_gracefully(tmp_path: Path) -> None:
    # A fleet of its own: the session's kubelet must keep running.
    out = tmp_path / "out"
    cluster = start_cluster(tmp_path / "fleet")
    try:
        cluster.apply(pod_manifest("graceful", [python_container("app", GRACEFUL)], out=out,
                                   terminationGracePeriodSeconds=20), namespace="default")
        wait_until(lambda: condition(pod_state(cluster, "default", "graceful"), "Ready").get("status") == "True",
                   what="pod graceful Ready", timeout=60)
        wait_until(lambda: (out / "started").exists(), what="the pod's SIGTERM handler", timeout=30)
        assert cluster.process is not None
        processes = psutil.Process(cluster.process.pid).children(recursive=True)
        assert any("/out/sigterm" in " ".join(p.cmdline()) for p in processes), "the pod's process is a child"
    finally:
        stop_cluster(cluster)
    assert (out / "sigterm").exists(), "the pod got SIGTERM, not just SIGKILL"
    left = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"still running after the node stopped: {[p.cmdline()[:3] for p in left]}"
