"""`stt-operator run`: start the kopf operator for SttServer resources; `release-finalizers`: uninstall aid;
`dashboard`: print the Grafana dashboard (docs/dashboards.md).

Credentials come from KUBECONFIG (or ~/.kube/config) or the in-cluster service account, both for
kopf's own login and for the operator's API client. `--leader-election NAMESPACE/NAME` lets several
replicas share one Lease (leader.py): only the holder runs kopf, the others wait and serve the
liveness probe. Without it the process runs kopf at once (one replica; `--standalone` is accepted
for compatibility). Environment: STT_OPERATOR_RESYNC_SEC (safety-net re-sync period, default 30) and
STT_OPERATOR_WATCH_TIMEOUT_SEC (server-side watch timeout, default 60).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

import kopf
from aiohttp import web

from stt_operator import heap
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_env


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stt-operator", description="The SttServer operator (kopf).")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator until SIGINT/SIGTERM")
    _add_scope(run)
    run.add_argument("--standalone", action="store_true", help="one replica, no election (the default)")
    run.add_argument("--leader-election", metavar="NAMESPACE/NAME",
                     help="several replicas: only the holder of this Lease reconciles")
    run.add_argument("--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    release = commands.add_parser(
        "release-finalizers", help="stop the operator, then remove kopf's finalizer from every SttServer")
    _add_scope(release)
    release.add_argument("--stop-deployment", metavar="NAMESPACE/NAME",
                         help="first scale this operator Deployment to 0 and wait for its pods to go")
    dashboard = commands.add_parser(
        "dashboard", help="print the Grafana dashboard JSON (or, with --configmap, the operator's ConfigMap)")
    dashboard.add_argument("--namespace", "-n", help="preselect this SttServer's namespace (with --name)")
    dashboard.add_argument("--name", help="preselect this SttServer (its own dashboard uid and title)")
    dashboard.add_argument("--configmap", action="store_true",
                           help="print the ConfigMap (YAML) the operator renders for --namespace/--name")
    return parser


def _add_scope(command: argparse.ArgumentParser) -> None:
    scope = command.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[],
                       help="this namespace (repeatable; globs allowed for run, as in kopf)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="the whole cluster (default)")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "dashboard":
        print(_dashboard(args), end="")
        return
    if args.command == "release-finalizers":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        asyncio.run(_release(args))
        return
    kopf.configure(debug=args.verbose, verbose=args.verbose)
    heap.small_tls_read_buffers()  # before kopf or we open a connection
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    from stt_operator import handlers  # importing registers the handlers with kopf
    from stt_operator.child_watch import Scope

    handlers.SCOPE = Scope(namespaces=tuple(args.namespace))

    if args.leader_election:
        if asyncio.run(_run_elected(args)):
            raise SystemExit("lost the leader election: exiting so the pod restarts as a standby")
        return
    kopf.run(standalone=True, namespaces=args.namespace, clusterwide=not args.namespace,
             liveness_endpoint=args.liveness)


def _dashboard(args: argparse.Namespace) -> str:
    """The dashboard JSON, or the ConfigMap the operator would render for one SttServer."""
    from stt_operator.dashboards import dashboard_json

    if (args.namespace is None) != (args.name is None) or (args.configmap and args.name is None):
        raise SystemExit("stt-operator dashboard: --namespace and --name go together (and --configmap needs both)")
    if not args.configmap:
        return dashboard_json(namespace=args.namespace, sttserver=args.name)
    import yaml

    from stt_operator.builders import build_grafana_dashboard
    from stt_operator.spec import parse_spec

    spec = parse_spec({"metadata": {"name": args.name, "namespace": args.namespace},
                       "spec": {"image": "unused", "monitoring": {"grafanaDashboard": {"enabled": True}}}})
    return str(yaml.safe_dump(build_grafana_dashboard(spec), sort_keys=False))


async def _release(args: argparse.Namespace) -> None:
    from stt_operator import uninstall

    async with KubeApi(credentials_from_env()) as api:
        await uninstall.run(api, namespaces=args.namespace, deployment=args.stop_deployment)


async def _run_elected(args: argparse.Namespace) -> bool:
    """Wait for the Lease, run kopf while holding it; True when leadership was lost (not a clean stop)."""
    from stt_operator.leader import LeaderElector

    lease_namespace, _, lease_name = args.leader_election.rpartition("/")
    if not lease_namespace or not lease_name:
        raise SystemExit(f"--leader-election wants NAMESPACE/NAME, got {args.leader_election!r}")
    async with KubeApi(credentials_from_env()) as api:
        elector = LeaderElector(api, namespace=lease_namespace, name=lease_name)
        # A standby is alive too: it answers the probe until it leads, then kopf serves it.
        standby = await _serve_liveness(args.liveness) if args.liveness else None
        try:
            await elector.acquire()
        finally:
            if standby is not None:
                await standby.cleanup()
        lost = asyncio.Event()
        renewing = asyncio.create_task(elector.hold(lost))
        try:
            await kopf.operator(standalone=True, namespaces=args.namespace, clusterwide=not args.namespace,
                                liveness_endpoint=args.liveness, stop_flag=lost)
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            if not lost.is_set():
                await elector.release()
        return lost.is_set()


async def _serve_liveness(url: str) -> web.AppRunner:
    parts = urlsplit(url)
    app = web.Application()

    async def alive(_: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app.router.add_get(parts.path or "/", alive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname or "0.0.0.0", parts.port or 80, reuse_address=True).start()
    return runner


if __name__ == "__main__":
    main()
