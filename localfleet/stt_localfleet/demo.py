"""`python -m stt_localfleet.demo` (what `make demo` runs): the whole system on this machine, end to end.

It starts the local cluster (the real control plane, the process kubelet, the NodePort proxy),
then uses the real tools the way a platform team would: `helm install` of the operator chart,
`kubectl apply -f crds/samples/demo.yaml`, `kubectl get stt` (printer columns served by the API
server) and `kubectl get deploy,rs,pods,svc,endpointslices`. It streams a synthesized sentence
through the NodePort and prints the transcript, pushes real-time load until the operator scales
up, stops it and watches the scale-down, then turns autoscaling off and drives the server with
`kubectl scale stt/...` and `kubectl rollout restart`, prints `kubectl get events` and the measured
figures, and tears everything down (also on errors and Ctrl-C). Exit code 0 on success.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import psutil
import yaml
from stt_server.client import SttClientError

from stt_localfleet.fleet import CHART_DIR, REPO_ROOT, FleetError, LocalFleet
from stt_localfleet.loadgen import LoadGenerator, wait_serving

SAMPLE: Final = REPO_ROOT / "crds" / "samples" / "demo.yaml"
SENTENCE: Final = "The customer asked for a demo of the streaming transcription feature."
OPERATOR_NAMESPACE: Final = "stt-system"
OPERATOR_RELEASE: Final = "stt-operator"
T = TypeVar("T")


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class Figures:
    """What the demo measured (seconds are wall-clock from the start of the load)."""

    cluster_ready_sec: float = math.nan
    ready_after_apply_sec: float = math.nan
    scale_up_decision_sec: float = math.nan
    new_pod_ready_sec: float = math.nan
    scale_down_sec: float = math.nan
    kubectl_scale_sec: float = math.nan
    rollout_restart_sec: float = math.nan
    operator_cpu_percent: float = math.nan
    operator_rss_mib_peak: float = math.nan


class OperatorMeter:
    """CPU (average over the window) and peak RSS of the operator pod's process, sampled each second."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.cpu_start = sum(self.process.cpu_times()[:2])
        self.wall_start = time.monotonic()
        self.rss_peak = self.process.memory_info().rss
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        with contextlib.suppress(psutil.Error):  # the pod was restarted: the figures stop there
            while True:
                self.rss_peak = max(self.rss_peak, self.process.memory_info().rss)
                await asyncio.sleep(1.0)

    def stop(self) -> tuple[float, float]:
        self._task.cancel()
        with contextlib.suppress(psutil.Error):
            cpu = sum(self.process.cpu_times()[:2]) - self.cpu_start
            return 100.0 * cpu / max(1e-9, time.monotonic() - self.wall_start), self.rss_peak / 2**20
        return math.nan, self.rss_peak / 2**20


async def until(fleet: LocalFleet, check: Callable[[], Awaitable[T | None]], *, what: str, timeout: float,
                every: float = 0.25) -> T:
    """Poll `check` until it returns something; fail with `what` (and stay alert to dead processes)."""
    deadline = time.monotonic() + timeout
    while True:
        fleet.check_alive()
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise FleetError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(every)


def condition(obj: Mapping[str, Any], type_: str) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return str(cond.get("status"))
    return None


async def show(fleet: LocalFleet, *args: str) -> str:
    """Run kubectl or helm (the first argument), echoing the command line and its output."""
    say(f"$ {' '.join(args)}")
    result = await fleet.run_tool(args[0], *args[1:])
    for line in (result.stdout or result.stderr).rstrip().splitlines():
        say(f"  {line}")
    return result.stdout


def operator_pid(pod: Mapping[str, Any]) -> int | None:
    """The local process behind the operator pod (the kubelet's containerID is `localfleet://<pid>`)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        container_id = str(status.get("containerID") or "")
        if container_id.startswith("localfleet://") and container_id[len("localfleet://"):].isdigit():
            return int(container_id[len("localfleet://"):])
    return None


async def run(manifest: Path, *, load_workers: int | None, timeout: float, api_key: str | None = None,
              workdir: Path | None = None) -> Figures:
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    server = next(d for d in docs if d.get("kind") == "SttServer")
    namespace = server["metadata"].get("namespace") or "stt"
    name = server["metadata"]["name"]
    autoscaling = (server.get("spec") or {}).get("autoscaling") or {}
    figures = Figures()
    node_port = ((server.get("spec") or {}).get("service") or {}).get("nodePort")
    if node_port and not port_free(int(node_port)):
        raise FleetError(f"127.0.0.1:{node_port} (the manifest's nodePort) is in use: is another demo running?")
    say("== starting the local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, "
        "the process kubelet and the NodePort proxy ==")
    t0 = time.monotonic()
    async with LocalFleet(workdir=workdir) as fleet:
        figures.cluster_ready_sec = time.monotonic() - t0
        say(f"   node localfleet Ready after {figures.cluster_ready_sec:.1f} s (files and logs in {fleet.workdir})")
        say(f"   to look around meanwhile: export KUBECONFIG={fleet.kubeconfig} PATH={fleet.bin_dir}:$PATH")
        say("== installing the operator with helm ==")
        await show(fleet, "helm", "install", OPERATOR_RELEASE, str(CHART_DIR.relative_to(REPO_ROOT)),
                   "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--set", "image.tag=dev",
                   "--wait", "--timeout", f"{int(timeout)}s")
        await show(fleet, "kubectl", "get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide")
        say(f"== applying {manifest.relative_to(REPO_ROOT) if manifest.is_relative_to(REPO_ROOT) else manifest} ==")
        await fleet.kubectl("create", "namespace", namespace)
        applied_at = time.monotonic()
        await show(fleet, "kubectl", "apply", "-f", str(manifest))

        async def stt() -> dict[str, Any]:
            return await fleet.kubectl_json("get", "stt", name, "-n", namespace)

        async def ready() -> dict[str, Any] | None:
            obj = await stt()
            return obj if condition(obj, "Ready") == "True" else None
        await until(fleet, ready, what=f"SttServer {name} to be Ready", timeout=timeout, every=0.5)
        figures.ready_after_apply_sec = time.monotonic() - applied_at
        say(f"== Ready {figures.ready_after_apply_sec:.1f} s after the apply ==")
        await show(fleet, "kubectl", "get", "stt", "-n", namespace)
        await show(fleet, "kubectl", "get", "deploy,rs,pods,svc,endpointslices", "-n", namespace, "-o", "wide")

        service = await fleet.kubectl_json("get", "service", name, "-n", namespace)
        grpc_node_port = next(p["nodePort"] for p in service["spec"]["ports"] if p.get("name") == "grpc")
        target = f"127.0.0.1:{grpc_node_port}"
        say(f"== streaming a synthesized sentence through the NodePort {target} ==")
        try:
            await wait_serving(target, timeout=timeout, api_key=api_key)
            await transcribe(target, api_key=api_key)
        except (SttClientError, TimeoutError) as exc:
            raise FleetError(f"no answer through the NodePort {target}: {exc}") from exc

        async def deployment() -> dict[str, Any]:
            return await fleet.kubectl_json("get", "deployment", name, "-n", namespace)

        start_replicas = int((await deployment())["spec"].get("replicas", 1))
        workers = load_workers or default_workers(autoscaling)
        operator_pods = await fleet.kubectl_json("get", "pods", "-n", OPERATOR_NAMESPACE)
        pid = next((p for p in map(operator_pid, operator_pods.get("items", [])) if p), None)
        meter = OperatorMeter(pid) if pid else None
        say(f"== load: {workers} concurrent real-time streams until the operator scales up ==")
        load = LoadGenerator(target, workers=workers, api_key=api_key)
        await load.start()

        async def scaled_up() -> int | None:
            replicas = int((await deployment())["spec"].get("replicas", 1))
            return replicas if replicas > start_replicas else None
        new_replicas = await until(fleet, scaled_up, what="a scale-up decision", timeout=timeout)
        figures.scale_up_decision_sec = time.monotonic() - load.started_at
        reason = ((await stt()).get("status") or {}).get("autoscaling", {}).get("reason", "")
        say(f"   {figures.scale_up_decision_sec:5.1f} s  operator scaled {start_replicas} -> {new_replicas}: {reason}")

        async def ready_replicas(at_least: int) -> int | None:
            status = (await deployment()).get("status") or {}
            return status.get("readyReplicas") if (status.get("readyReplicas") or 0) >= at_least else None
        await until(fleet, lambda: ready_replicas(new_replicas), what="the new pods to be Ready", timeout=timeout)
        figures.new_pod_ready_sec = time.monotonic() - load.started_at
        say(f"   {figures.new_pod_ready_sec:5.1f} s  {new_replicas} pods Ready")
        await show(fleet, "kubectl", "get", "pods", "-n", namespace, "-o", "wide")

        say("== load stopped: waiting for the scale-down (streams in flight finish first) ==")
        stopped_at = time.monotonic()
        await load.stop()
        tally = load.tally
        say(f"   load: {tally.completed} streams completed, {tally.finals} finals, failures {tally.failures or 'none'}")
        for message in tally.messages:
            say(f"     {message}")

        async def scaled_down() -> int | None:
            dep = await deployment()
            replicas = int(dep["spec"].get("replicas", 1))
            live = (dep.get("status") or {}).get("replicas")
            return replicas if replicas < new_replicas and live == replicas else None
        final_replicas = await until(fleet, scaled_down, what="the scale-down", timeout=timeout + 300)
        figures.scale_down_sec = time.monotonic() - stopped_at
        say(f"   {figures.scale_down_sec:5.1f} s after the load stopped: {final_replicas} replica(s), drained")
        if meter is not None:
            figures.operator_cpu_percent, figures.operator_rss_mib_peak = meter.stop()

        say("== by hand: autoscaling off, then kubectl scale and kubectl rollout restart ==")
        await show(fleet, "kubectl", "patch", "stt", name, "-n", namespace, "--type=merge",
                   "-p", json.dumps({"spec": {"autoscaling": {"enabled": False}}}))
        scaled_at = time.monotonic()
        await show(fleet, "kubectl", "scale", f"stt/{name}", "-n", namespace, "--replicas=2")
        await until(fleet, lambda: ready_replicas(2), what="2 Ready pods after kubectl scale", timeout=timeout)
        figures.kubectl_scale_sec = time.monotonic() - scaled_at
        say(f"   2 pods Ready {figures.kubectl_scale_sec:.1f} s after kubectl scale")
        restarted_at = time.monotonic()
        await show(fleet, "kubectl", "rollout", "restart", f"deployment/{name}", "-n", namespace)
        await show(fleet, "kubectl", "rollout", "status", f"deployment/{name}", "-n", namespace,
                   f"--timeout={int(timeout)}s")
        figures.rollout_restart_sec = time.monotonic() - restarted_at
        await show(fleet, "kubectl", "get", "stt,rs,pods", "-n", namespace)
        say(f"== events in namespace {namespace} ==")
        await show(fleet, "kubectl", "get", "events", "-n", namespace, "--sort-by=.lastTimestamp")
        say("== tearing down ==")
    return figures


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def default_workers(autoscaling: Mapping[str, Any]) -> int:
    """Enough streams to push one replica well past its per-replica target."""
    sessions = autoscaling.get("targetActiveSessionsPerReplica")
    return max(3, math.ceil(float(sessions) * 2)) if sessions else 6


async def transcribe(target: str, *, api_key: str | None = None) -> None:
    from stt_server.bench.workload import compose, synthesize
    from stt_server.client import SttClient, WavAudio

    clip = (await asyncio.to_thread(synthesize, [SENTENCE]))[0]
    audio = compose([clip], texts=[SENTENCE])
    say(f"   said:      {SENTENCE}")
    last = ""

    def show(response: Any) -> None:
        nonlocal last
        for result in response.results:
            text = result.alternatives[0].transcript if result.alternatives else ""
            if not result.is_final and text and text != last:
                say(f"   partial:   {text}")
                last = text
    async with SttClient(target, api_key=api_key) as client:
        outcome = await client.stream(WavAudio(audio.pcm, 16000), realtime=True, on_response=show)
    if outcome.error is not None:
        raise FleetError(f"the demo stream failed: {outcome.error}")
    say(f"   final:     {outcome.transcript}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--manifest", type=Path, default=SAMPLE)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the fleet's files and logs here")
    parser.add_argument("--load-workers", type=int, default=None)
    parser.add_argument("--api-key", default=os.environ.get("STT_DEMO_API_KEY"),
                        help="API key, when the manifest's servers require one (default: $STT_DEMO_API_KEY)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds allowed for each wait")
    args = parser.parse_args(argv)
    if not args.manifest.exists():
        print(f"demo manifest {args.manifest} not found", file=sys.stderr)
        return 1

    async def guarded() -> Figures:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run(args.manifest, load_workers=args.load_workers, timeout=args.timeout,
                         api_key=args.api_key, workdir=args.workdir)

    try:
        figures = asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: everything was stopped", file=sys.stderr)
        return 130
    except FleetError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        print("if the fleet had started, its logs were kept (the path is printed above)", file=sys.stderr)
        return 1
    say("== figures ==")
    say(f"   cluster start to node Ready:         {figures.cluster_ready_sec:6.1f} s")
    say(f"   kubectl apply to SttServer Ready:    {figures.ready_after_apply_sec:6.1f} s")
    say(f"   load start to scale-up decision:     {figures.scale_up_decision_sec:6.1f} s")
    say(f"   load start to new pod Ready:         {figures.new_pod_ready_sec:6.1f} s")
    say(f"   load stop to scaled down + drained:  {figures.scale_down_sec:6.1f} s")
    say(f"   kubectl scale to 2 pods Ready:       {figures.kubectl_scale_sec:6.1f} s")
    say(f"   kubectl rollout restart to complete: {figures.rollout_restart_sec:6.1f} s")
    say(f"   operator CPU (avg while managing):   {figures.operator_cpu_percent:6.1f} % of one core")
    say(f"   operator RSS (peak):                 {figures.operator_rss_mib_peak:6.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
