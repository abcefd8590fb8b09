"""`stt-operator run`: start the kopf operator for SttServer resources.

Credentials come from KUBECONFIG (or ~/.kube/config) or the in-cluster service account, both for
kopf's own login and for the operator's API client. `--standalone` runs without kopf peering (one
replica); otherwise replicas coordinate through the peering object named by `--peering`.
Environment: STT_OPERATOR_RESYNC_SEC (safety-net re-sync period, default 30) and
STT_OPERATOR_WATCH_TIMEOUT_SEC (server-side watch timeout, default 60).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import kopf


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stt-operator", description="The SttServer operator (kopf).")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator until SIGINT/SIGTERM")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[],
                       help="serve this namespace (repeatable; globs allowed, as in kopf)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="serve the whole cluster (default)")
    run.add_argument("--standalone", action="store_true", help="no peering: a single operator replica")
    run.add_argument("--peering", metavar="NAME", help="the kopf peering object for several replicas")
    run.add_argument("--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command != "run":  # pragma: no cover - argparse already enforces the choices
        raise SystemExit(2)
    kopf.configure(debug=args.verbose, verbose=args.verbose)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    from stt_operator import handlers  # noqa: F401 - importing registers the handlers with kopf

    kopf.run(
        standalone=args.standalone,
        peering_name=args.peering,
        namespaces=args.namespace,
        clusterwide=not args.namespace,
        liveness_endpoint=args.liveness,
    )


if __name__ == "__main__":
    main()
