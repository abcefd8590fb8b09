"""Starting a container process in its own mount namespace, through the exec'd `nslauncher`.

`LaunchSpec` says what one process needs: argv, environment, bind mounts (host source -> path in
the container's view), working directory, and which image paths to re-expose. `hidden_paths` is
the pure rule for the latter: an image path some mount target strictly contains would be hidden
(an emptyDir at /tmp over a checkout under /tmp), so the launcher binds it back. `spawn` runs the
launcher and waits for its verdict on a close-on-exec pipe: EOF means the program was exec'd,
a JSON line means the container could not be created (LaunchError with that reason).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from stt_localfleet.launcherrors import RUN_CONTAINER_ERROR, LaunchError

NSLAUNCHER: Final = Path(__file__).with_name("nslauncher.py")


@dataclass(frozen=True)
class Mount:
    """A bind mount: `source` on the host appears at `target` inside the container."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class LaunchSpec:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    mounts: tuple[Mount, ...] = ()
    cwd: str = "/"
    reexpose: tuple[Path, ...] = ()
    join_pid: int | None = None  # run inside this process's mount namespace instead of a new one


def mount_order(mounts: Iterable[Mount]) -> tuple[Mount, ...]:
    """Parents before children (by path depth, stable), as container runtimes order mounts."""
    return tuple(sorted(mounts, key=lambda m: len(Path(m.target).parts)))


def hidden_paths(image_paths: Iterable[Path], targets: Iterable[str]) -> tuple[Path, ...]:
    """Image paths that a mount target strictly contains (a mount exactly on one is left alone)."""
    real_targets = [Path(os.path.realpath(t)) for t in targets]
    return tuple(p for p in image_paths if any(p != t and p.is_relative_to(t) for t in real_targets))


def launcher_argv(spec: LaunchSpec, *, status_fd: int, parent: int | None = None) -> list[str]:
    """The command line that runs `spec.argv` through the launcher (isolated interpreter, no site)."""
    document = {
        "parent": os.getpid() if parent is None else parent, "status_fd": status_fd,
        "mounts": [{"source": str(m.source), "target": m.target, "readOnly": m.read_only}
                   for m in mount_order(spec.mounts)],
        "reexpose": [str(p) for p in spec.reexpose], "join": spec.join_pid, "cwd": spec.cwd,
        "argv": list(spec.argv),
    }
    return [sys.executable, "-I", "-S", str(NSLAUNCHER), json.dumps(document)]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


async def spawn(spec: LaunchSpec, *, stdout: IO[bytes] | int | None, stderr: IO[bytes] | int | None,
                ) -> asyncio.subprocess.Process:
    """Start the process; raises LaunchError when the launcher could not create the container.

    The process is the leader of a new session (its pid is its process group), so the whole
    container can be signalled at once.
    """
    read_end, write_end = os.pipe()
    try:
        try:
            process = await asyncio.create_subprocess_exec(
                *launcher_argv(spec, status_fd=write_end), env=dict(spec.env), stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout, stderr=stderr, start_new_session=True, pass_fds=(write_end,), cwd="/")
        finally:
            os.close(write_end)
        verdict = await asyncio.get_running_loop().run_in_executor(None, _read_all, read_end)
    finally:
        os.close(read_end)
    if verdict:
        await process.wait()
        try:
            failure = json.loads(verdict.splitlines()[0])
            raise LaunchError(str(failure["reason"]), str(failure["message"]))
        except (ValueError, KeyError) as exc:
            raise LaunchError(RUN_CONTAINER_ERROR, verdict.decode(errors="replace").strip()) from exc
    return process
