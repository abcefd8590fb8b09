"""`stt-localfleet`: build the control-plane binaries, print where they are, run a one-machine cluster.

    stt-localfleet build            build what is missing from the binary cache (one line per binary)
    stt-localfleet bin-dir          print the folder holding kubectl and helm (and the control plane)
    stt-localfleet up --dir DIR     run the cluster; DIR/kubeconfig appears once node `localfleet` is
                                    Ready; runs until SIGTERM or Ctrl-C, then stops everything
    stt-localfleet exec --dir DIR -- CMD...
                                    run CMD inside the cluster network, where pod IPs (10.244.0.x)
                                    answer, with KUBECONFIG and PATH set for that cluster
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from stt_localfleet import binaries, podnet
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
    run = commands.add_parser("exec", help="run a command inside the cluster network of a running fleet")
    run.add_argument("--dir", type=Path, required=True, help="the folder given to `up`")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    return parser


def _exec(directory: Path, argv: list[str]) -> int:
    """Replace this process with `argv` inside the running fleet's cluster network."""
    argv = argv[1:] if argv[:1] == ["--"] else argv
    pid_file = directory / "podnet.pid"
    if not argv:
        print("stt-localfleet exec: no command given (stt-localfleet exec --dir DIR -- CMD...)", file=sys.stderr)
        return 2
    if not pid_file.exists():
        print(f"stt-localfleet exec: no running fleet in {directory} ({pid_file} is missing)", file=sys.stderr)
        return 1
    netns = Path(f"/proc/{pid_file.read_text().strip()}/ns/net")
    os.environ.update(KUBECONFIG=str(directory / "kubeconfig"),
                      PATH=f"{binaries.bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}")
    command = podnet.enter_command(netns, argv)
    os.execvp(command[0], command)
    return 127  # not reached


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
        elif args.command == "exec":
            return _exec(args.dir.resolve(), list(args.argv))
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
