"""The exec'd launcher that puts one container process in its own mount namespace (stdlib only).

Run as `python -I -S nslauncher.py SPEC_JSON` with the container's environment; it never imports
the project (a pod's mounts may hide the checkout). Steps, all before the program runs:

1. PR_SET_PDEATHSIG(SIGKILL), so the container dies with the kubelet (see spawn.py for why this is
   done after an exec rather than in `preexec_fn`).
2. `unshare(CLONE_NEWNS)` and make `/` recursively private, so nothing propagates back to the host;
   or, for exec probes and preStop hooks, `setns` into the running container's mount namespace.
3. Open every mount source and every image path to re-expose as an O_PATH file descriptor, while
   the view (a copy of the host's) is still intact. Not before the unshare: a bind mount's source
   must belong to the caller's mount namespace, and the kernel refuses (EINVAL) a descriptor that
   refers to the host's mounts.
4. Bind each source (`/proc/self/fd/N`) onto its target, parents first, creating a missing target
   (a directory, or an empty file for a file source). A target outside every volume is created on
   the host's filesystem and stays there as an empty directory or file.
5. Bind each hidden image path's saved descriptor back at its own path (creating it inside the
   volume that hid it), then remount the read-only targets read-only.
6. chdir to the working directory, then exec the program (PATH from the container's environment).

Failures before the exec are written as one JSON line `{"reason", "message"}` to the status
descriptor, which the exec closes on success (close-on-exec), so the parent can tell "the program
started" from "the container could not be created".
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
ROOT_NEEDED = "RunContainerError"


class SetupError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)
    return libc


def _check(result: int, what: str, *, reason: str = "RunContainerError") -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(reason, f"{what}: {os.strerror(err)}")


def _mount(libc: ctypes.CDLL, source: str | None, target: str, flags: int, what: str) -> None:
    _check(libc.mount(source.encode() if source else None, target.encode(), None, flags, None), what)


def _make_target(target: str, *, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))


def _setup(spec: dict[str, Any], libc: ctypes.CDLL) -> None:
    mounts: list[dict[str, Any]] = spec.get("mounts") or []
    reexpose: list[str] = spec.get("reexpose") or []
    join = spec.get("join")
    if join:
        ns_fd = os.open(f"/proc/{join}/ns/mnt", os.O_RDONLY)
        _check(libc.setns(ns_fd, CLONE_NEWNS), f"setns into the mount namespace of pid {join}")
        os.close(ns_fd)
    else:
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS): the local kubelet needs root "
                                          "(CAP_SYS_ADMIN) to give each pod its own mount namespace",
               reason=ROOT_NEEDED)
        _mount(libc, None, "/", MS_REC | MS_PRIVATE, "make / rprivate")
    opened = []
    for mount in mounts:
        try:
            fd = os.open(mount["source"], os.O_PATH)
        except OSError as exc:
            raise SetupError("RunContainerError", f"mount source {mount['source']}: {exc.strerror}") from exc
        opened.append((fd, mount, os.path.isdir(f"/proc/self/fd/{fd}")))
    saved = [(os.open(path, os.O_PATH | os.O_DIRECTORY), path) for path in reexpose]
    for fd, mount, is_dir in opened:
        _make_target(mount["target"], is_dir=is_dir)
        _mount(libc, f"/proc/self/fd/{fd}", mount["target"], MS_BIND | MS_REC,
               f"bind {mount['source']} on {mount['target']}")
        os.close(fd)
    for fd, path in saved:
        os.makedirs(path, exist_ok=True)
        _mount(libc, f"/proc/self/fd/{fd}", path, MS_BIND | MS_REC, f"re-expose {path}")
        os.close(fd)
    for _, mount, _ in opened:
        if mount.get("readOnly"):
            _mount(libc, None, mount["target"], MS_REMOUNT | MS_BIND | MS_RDONLY,
                   f"remount {mount['target']} read-only")


def main() -> None:
    spec = json.loads(sys.argv[1])
    status_fd = int(spec["status_fd"])
    libc = _libc()
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != int(spec["parent"]):  # the parent died before the signal was armed
            os._exit(1)
        _setup(spec, libc)
        cwd = str(spec.get("cwd") or "/")
        os.makedirs(cwd, exist_ok=True)
        os.chdir(cwd)
        os.set_inheritable(status_fd, False)  # closed by a successful exec: the parent reads EOF
        argv = [str(a) for a in spec["argv"]]
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            raise SetupError("StartError", f'exec: "{argv[0]}": {exc.strerror}') from exc
    except SetupError as exc:
        os.write(status_fd, json.dumps({"reason": exc.reason, "message": exc.message}).encode() + b"\n")
        os._exit(128)
    except OSError as exc:
        os.write(status_fd, json.dumps({"reason": "RunContainerError", "message": str(exc)}).encode() + b"\n")
        os._exit(128)


if __name__ == "__main__":
    main()
