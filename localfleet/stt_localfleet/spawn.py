"""Child processes that die with the process that started them.

The local fleet's processes (API server, kubelet, proxy, operator, every pod's stt-server) must not
outlive a fleet that crashed: they would hold ports and CPU. Linux's PR_SET_PDEATHSIG does that,
but setting it through `preexec_fn` makes CPython fork() instead of vfork() and run Python in the
child before exec, in a threaded process (gRPC, aiohttp, the asyncio child watcher): at-fork
handlers and locks held by other threads can then abort or hang the child. It did: a fleet's
operator process died with SIGABRT in gRPC's event engine before it ever ran. So a tiny launcher
sets the signal after the exec and then execs the real program, which keeps the pid.

Pod containers go through a bigger launcher of the same kind, `nslauncher.py` (started by
`launcher.py`), which also gives each container its own mount namespace before the exec.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from typing import Final

_LAUNCHER: Final = """\
import ctypes, os, signal, sys
parent = int(sys.argv[1])
try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except OSError:
    pass
if os.getppid() != parent:  # the parent died before the signal was armed
    sys.exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def tied_to_parent(argv: Sequence[str], *, path: str | None = None) -> list[str]:
    """`argv` wrapped so the program gets SIGKILL when this process dies (Linux; elsewhere as is).

    Raises FileNotFoundError here, in the parent, when the program cannot be found on `path`
    (default: this process's PATH), as starting it directly would.
    """
    if shutil.which(argv[0], path=path) is None:
        raise FileNotFoundError(f"{argv[0]}: not found")
    if sys.platform != "linux":
        return list(argv)
    return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *argv]


async def stop_process(proc: asyncio.subprocess.Process, *, timeout: float) -> None:
    """SIGTERM, up to `timeout` seconds to exit, then SIGKILL; returns once it is gone."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(timeout):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
