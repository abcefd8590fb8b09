"""`stt-localfleet`: build the control-plane binaries, print where they are, run a one-machine cluster.

    stt-localfleet build            build what is missing from the binary cache (one line per binary)
    stt-localfleet bin-dir          print the folder holding kubectl and helm (and the control plane)
    stt-localfleet up --dir DIR     run the cluster; DIR/kubeconfig appears once node `localfleet` is
                                    Ready; runs until SIGTERM or Ctrl-C, then stops everything
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from stt_localfleet import binaries
from stt_localfleet.fleet import FleetError, LocalFleet


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stt-localfleet", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the missing control-plane binaries with `go build`")
    commands.add_parser("bin-dir", help="print the folder holding kubectl and helm")
    up = commands.add_parser("up", help="run the cluster until SIGTERM or Ctrl-C")
    up.add_argument("--dir", type=Path, required=True, help="work folder: kubeconfig, certificates, logs, pods")
    up.add_argument("--audit", action="store_true", help="write the API server's audit log of writes to DIR/logs")
    up.add_argument("--backoff-scale", type=float, default=1.0,
                    help="multiply the kubelet's crash back-off (tests use less than 1)")
    return parser


async def _up(directory: Path, *, audit: bool, backoff_scale: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    async with LocalFleet(workdir=directory, audit=audit, backoff_scale=backoff_scale) as fleet:
        print(f"node localfleet Ready after {time.monotonic() - started:.1f} s; "
              f"export KUBECONFIG={fleet.kubeconfig} PATH={fleet.bin_dir}:$PATH", flush=True)
        waiter = asyncio.create_task(stop.wait())
        while not waiter.done():
            fleet.check_alive()  # a component that dies ends the cluster, loudly
            await asyncio.wait({waiter}, timeout=1.0)
        print("stopping: pods first, then the control plane", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "build":
            print(binaries.ensure_binaries())
        elif args.command == "bin-dir":
            print(binaries.bin_dir())
        else:
            binaries.ensure_binaries()
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_up(args.dir.resolve(), audit=args.audit, backoff_scale=args.backoff_scale))
    except (binaries.BuildError, FleetError) as exc:
        print(f"stt-localfleet: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
