"""Benchmark stt-operator on the local cluster: N SttServers applied at once, then the steady state.

    python -m stt_localfleet.operator_bench --dir DIR --count 50 --count 200 \
        --variant before=/tmp/before/operator --variant after= --out docs/benchmarks --label 50-200

Starts a cluster (`stt-localfleet up --dir DIR`), applies the SttServer CRD, then for every count
and every variant (interleaved, so each sees the same machine) runs one operator process
(`python -m stt_operator run --namespace NS`, its code from the variant's PYTHONPATH entry, empty =
the installed tree) in a namespace of its own and measures:

- per SttServer, the time from its POST being answered to the ADDED watch event of its last child;
- the operator's own CPU time (psutil: user + system) for that burst, idle before it, and over a
  steady-state window after it, as % of one core; its RSS;
- the load average, because the machine is shared.

The variant `floor=client` runs no operator: the benchmark itself POSTs each SttServer's children
(the operator's builders, with the ownerReference) the moment that SttServer's POST is answered,
in one round trip. Its latency is what any operator on this cluster would at best reach: the API
server, etcd and the controllers under the same burst, with no watch delay and no operator work.

The SttServers have autoscaling on (min 1, max 3) and ask for more CPU than the node has, so each
Deployment keeps one Pending pod: the operator's autoscaler runs for every SttServer with no pod
Ready (the steady state the issue describes), and no `stt-server` process competes for the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import psutil
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, credentials_from_kubeconfig, resource_path
from stt_operator.builders import build_children
from stt_operator.spec import parse_spec

from stt_localfleet import binaries
from stt_localfleet.operator_bench_report import RunResult, write_report

REPO: Final = Path(__file__).resolve().parents[2]
CRD: Final = REPO / "crds" / "sttservers.sttfleet.io.yaml"
SERVERS: Final = resource_path("sttfleet.io/v1alpha1", "sttservers")
# kind -> (apiVersion, plural) of the children the operator makes on a cluster without prometheus-operator.
CHILD_PATHS: Final = {"ConfigMap": ("v1", "configmaps"), "Service": ("v1", "services"),
                      "Deployment": ("apps/v1", "deployments"), "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"),
                      "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies")}
MANAGED_BY: Final = "app.kubernetes.io/managed-by=stt-operator"
FLOOR: Final = "client"  # the variant code for "no operator: the client creates the children itself"


def sttserver(name: str, namespace: str) -> dict[str, Any]:
    """A small SttServer whose one pod stays Pending (it asks for more CPU than any node has)."""
    return {"apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"image": "ghcr.io/stt-fleet/stt-server:0.1.0",
                     "resources": {"requests": {"cpu": "500", "memory": "256Mi"}},
                     "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3}}}


def expected_kinds() -> frozenset[str]:
    """The child kinds one benchmark SttServer gets, from the builders themselves."""
    body = {**sttserver("probe", "default"), "metadata": {"name": "probe", "namespace": "default", "uid": "u",
                                                          "generation": 1}}
    return frozenset(c["kind"] for c in build_children(parse_spec(body), monitoring_apis=frozenset()))


def cpu_seconds(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    times = proc.cpu_times()
    return float(times.user + times.system)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(probe: Any, *, what: str, timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(every)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


@contextlib.contextmanager
def cluster(directory: Path, *, timeout: float = 240.0) -> Any:
    """`stt-localfleet up --dir DIRECTORY` for the duration of the block."""
    directory.mkdir(parents=True, exist_ok=True)
    kubeconfig = directory / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    with (directory / "up.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "stt_localfleet.cli", "up", "--dir", str(directory)],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not kubeconfig.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not come up; see {directory / 'up.log'}")
            time.sleep(0.2)
        yield kubeconfig
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def kubectl(kubeconfig: Path, *args: str) -> None:
    subprocess.run([str(binaries.bin_dir() / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
                   check=True, capture_output=True, timeout=120)


def split_variant(code: str) -> tuple[str, str]:
    """`PYTHONPATH[@PYTHON]` -> (code, interpreter): `@/venv/bin/python` runs an operator-only venv."""
    path, _, python = code.partition("@")
    return path, python or sys.executable


@contextlib.asynccontextmanager
async def operator(kubeconfig: Path, namespace: str, *, code: str, log: Path) -> AsyncIterator[psutil.Process]:
    """One `stt-operator run --namespace NAMESPACE` process, its code first from `code` when given."""
    code, python = split_variant(code)
    port = _free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    env.pop("STT_OPERATOR_RESYNC_SEC", None)  # the defaults a user gets
    if code:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (code, env.get("PYTHONPATH", "")) if p)
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            python, "-m", "stt_operator", "run", "--namespace", namespace,
            "--liveness", f"http://127.0.0.1:{port}/healthz", env=env, stdout=out, stderr=out,
            stdin=asyncio.subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as session:
            async def alive() -> bool:
                if proc.returncode is not None:
                    raise RuntimeError(f"stt-operator exited with {proc.returncode}; see {log}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        return resp.status == 200
                return False
            await until(alive, what="the operator's liveness probe", timeout=60)
        yield psutil.Process(proc.pid)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


@contextlib.asynccontextmanager
async def no_operator() -> AsyncIterator[None]:
    yield None


async def create_children(api: KubeApi, server: dict[str, Any]) -> None:
    """What the operator does for a new SttServer, done by the client at once (the `floor` variant)."""
    meta = server["metadata"]
    owner = {"apiVersion": server["apiVersion"], "kind": server["kind"], "name": meta["name"], "uid": meta["uid"],
             "controller": True, "blockOwnerDeletion": True}
    children = build_children(parse_spec(server), monitoring_apis=frozenset())
    await asyncio.gather(*(api.create(
        resource_path(CHILD_PATHS[child["kind"]][0], CHILD_PATHS[child["kind"]][1], namespace=meta["namespace"]),
        {**child, "metadata": {**child["metadata"], "namespace": meta["namespace"], "ownerReferences": [owner]}})
        for child in children))


async def watch_children(api: KubeApi, namespace: str, seen: dict[tuple[str, str], float]) -> list[asyncio.Task[None]]:
    """Record when each child's ADDED event arrives, keyed by (kind, owner name), from now on."""
    async def one(kind: str, api_version: str, plural: str) -> None:
        path = resource_path(api_version, plural, namespace=namespace)
        listing = await api.request("GET", path, params={"labelSelector": MANAGED_BY})
        version = listing["metadata"]["resourceVersion"]
        while True:
            params = {"labelSelector": MANAGED_BY, "resourceVersion": version, "timeoutSeconds": "600"}
            async for event in api.watch(path, params=params):
                obj = event.get("object") or {}
                version = (obj.get("metadata") or {}).get("resourceVersion", version)
                if event.get("type") == "ADDED":
                    for ref in obj["metadata"].get("ownerReferences") or ():
                        seen.setdefault((kind, ref["name"]), time.monotonic())

    tasks = [asyncio.create_task(one(kind, *where)) for kind, where in CHILD_PATHS.items()]
    await asyncio.sleep(1.0)  # the LISTs above pin the resourceVersion; later events are not lost either way
    return tasks


async def clean_up(api: KubeApi, kubeconfig: Path, namespace: str) -> str | None:
    """Drop kopf's finalizers (the operator is stopped) and delete the namespace; a note if it lingers."""
    kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false")
    for server in await api.list(resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=namespace)):
        if server["metadata"].get("finalizers"):
            with contextlib.suppress(ApiError):
                await api.merge_patch(resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=namespace,
                                                    name=server["metadata"]["name"]), {"metadata": {"finalizers": None}})

    async def gone() -> bool:
        return await api.get_or_none(resource_path("v1", "namespaces", name=namespace)) is None
    try:
        await until(gone, what=f"namespace {namespace} to go", timeout=240, every=1.0)
    except TimeoutError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class Steady:
    """The operator's cost over the steady-state window (all 0 when no operator ran)."""

    cpu_percent: float = 0.0  # of one core
    rss_end: int = 0
    rss_max: int = 0
    threads: int = 0
    connections: int = 0  # open TCP connections (each TLS connection holds buffers)


async def steady_state(proc: psutil.Process, *, window_sec: float, profile_to: Path | None) -> Steady:
    """Sample the operator's RSS every second for `window_sec`; its CPU over the window; py-spy if asked."""
    profiler = None if profile_to is None else await asyncio.create_subprocess_exec(  # collapsed stacks: where CPU goes
        "py-spy", "record", "--pid", str(proc.pid), "--duration", str(int(window_sec)), "--format", "raw",
        "--output", str(profile_to), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss: list[int] = []
    cpu_from, wall = cpu_seconds(proc), time.monotonic()
    while time.monotonic() - wall < window_sec:
        rss.append(proc.memory_info().rss)
        await asyncio.sleep(1.0)
    cpu_percent = (cpu_seconds(proc) - cpu_from) / (time.monotonic() - wall) * 100
    rss.append(proc.memory_info().rss)
    steady = Steady(cpu_percent=cpu_percent, rss_end=rss[-1], rss_max=max(rss), threads=proc.num_threads(),
                    connections=len(proc.net_connections(kind="tcp")))
    if profiler is not None:
        async with asyncio.timeout(30):
            await profiler.wait()
    return steady


async def one_run(api: KubeApi, kubeconfig: Path, *, variant: str, code: str, count: int, workdir: Path,
                  idle_sec: float, settle_sec: float, window_sec: float,
                  profile: bool = False) -> RunResult:
    namespace = f"bench-{variant}-{count}"
    kubectl(kubeconfig, "create", "namespace", namespace)
    kinds = expected_kinds()
    notes: list[str] = []
    seen: dict[tuple[str, str], float] = {}
    floor = code == FLOOR
    running = no_operator() if floor else operator(kubeconfig, namespace, code=code,
                                                    log=workdir / f"operator-{namespace}.log")
    async with running as proc:
        watches = await watch_children(api, namespace, seen)
        idle_from, wall = cpu_seconds(proc), time.monotonic()
        await asyncio.sleep(idle_sec)
        idle = (cpu_seconds(proc) - idle_from) / (time.monotonic() - wall) * 100
        load_before = os.getloadavg()
        applied: dict[str, float] = {}
        path = resource_path("sttfleet.io/v1alpha1", "sttservers", namespace=namespace)

        async def create(name: str) -> None:
            created = await api.create(path, sttserver(name, namespace))
            applied[name] = time.monotonic()
            if floor:
                await create_children(api, created)
        burst_from = cpu_seconds(proc)
        await asyncio.gather(*(create(f"s{i:03d}") for i in range(count)))

        def done() -> list[str]:
            return [n for n in applied if all((k, n) in seen for k in kinds)]

        async def all_done() -> bool:
            return len(done()) == count
        with contextlib.suppress(TimeoutError):
            await until(all_done, what="every child", timeout=300)
        burst_cpu = cpu_seconds(proc) - burst_from
        latencies = tuple(max(seen[k, n] for k in kinds) - applied[n] for n in done())
        if floor:
            steady = Steady()
        else:
            assert proc is not None
            await asyncio.sleep(settle_sec)
            steady = await steady_state(proc, window_sec=window_sec,
                                        profile_to=workdir / f"py-spy-{namespace}.txt" if profile else None)
        load_after = os.getloadavg()
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
    note = await clean_up(api, kubeconfig, namespace)
    if note:
        notes.append(note)
    if floor:
        notes.append("no operator: the client created each SttServer's children itself")
        code = "none (the client creates the children)"
    return RunResult(variant=variant, code=code or "working tree", count=count, latencies_sec=latencies,
                     missing=count - len(latencies), apply_cpu_sec=burst_cpu, idle_cpu_percent=idle,
                     steady_cpu_percent=steady.cpu_percent, steady_window_sec=window_sec,
                     rss_mb_end=steady.rss_end / 2**20, rss_mb_max=steady.rss_max / 2**20,
                     loadavg_before=load_before, loadavg_after=load_after,
                     threads=steady.threads, tcp_connections=steady.connections,
                     notes=tuple(notes), operator_ran=not floor)


async def bench(args: argparse.Namespace) -> Path:
    variants = [tuple(v.split("=", 1)) for v in args.variant] or [("after", "")]
    load_start = os.getloadavg()
    runs: list[RunResult] = []
    with cluster(args.dir) as kubeconfig:
        kubectl(kubeconfig, "apply", "--server-side", "-f", str(CRD))
        async with KubeApi(credentials_from_kubeconfig(kubeconfig), timeout_sec=60) as api:
            async def established() -> bool:
                crd = await api.get_or_none("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                            "sttservers.sttfleet.io") or {}
                return any(c.get("type") == "Established" and c.get("status") == "True"
                           for c in (crd.get("status") or {}).get("conditions") or ())
            await until(established, what="the SttServer CRD Established", timeout=120, every=0.5)
            for count in args.count:
                for variant, code in variants:
                    print(f"{variant}: {count} SttServers ...", flush=True)
                    run = await one_run(api, kubeconfig, variant=variant, code=code, count=count,
                                        workdir=args.dir, idle_sec=args.idle, settle_sec=args.settle,
                                        window_sec=args.window, profile=args.py_spy)
                    print(f"  {run.variant} {count}: P99 latency {sorted(run.latencies_sec)[-1:] or '-'}, "
                          f"steady {run.steady_cpu_percent:.1f} %, RSS {run.rss_mb_end:.0f} MB", flush=True)
                    runs.append(run)
    setup = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_count": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "cluster": "stt-localfleet up (Kubernetes v1.36.3, one 2-CPU node), no prometheus-operator CRDs",
        "sttserver": "autoscaling on (min 1, max 3, scrape every 15 s), requests cpu 500 / memory 256Mi: "
                     "one Pending pod each, so the autoscaler runs with no pod Ready and no server process runs",
        "children": ", ".join(sorted(expected_kinds())),
        "operator": "python -m stt_operator run --namespace NS (one namespace per run), default resync (30 s)",
        "latency": "per SttServer: its POST answered -> the ADDED watch event of its last child (client clock)",
        "windows": f"idle {args.idle:g} s before the apply; steady state {args.window:g} s, "
                   f"starting {args.settle:g} s after every child was present",
        "order": "interleaved: for each count, every variant in turn, on the same cluster",
    }
    return write_report(runs, out_dir=args.out, label=args.label, setup=setup)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="operator_bench", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--dir", type=Path, required=True, help="work folder for the cluster and operator logs")
    parser.add_argument("--count", type=int, action="append", required=True, help="SttServers per run (repeatable)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=PYTHONPATH[@PYTHON]",
                        help="an operator build: its code first on PYTHONPATH (empty: the installed tree), "
                             "run by PYTHON (default: this interpreter; e.g. an operator-only venv's)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks")
    parser.add_argument("--label", default="bench")
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--py-spy", action="store_true", help="profile the steady state (py-spy on PATH)")
    print(asyncio.run(bench(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
