"""tied_to_parent: the program keeps the pid it was started with and dies when its parent dies."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest
from stt_localfleet.spawn import tied_to_parent

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")

PARENT = """
import subprocess, sys, time
from stt_localfleet.spawn import tied_to_parent
child = subprocess.Popen(tied_to_parent([sys.executable, "-c", "import time; time.sleep(60)"]))
print(child.pid, flush=True)
time.sleep(60)
"""


def test_the_program_runs_under_the_pid_it_was_started_with() -> None:
    proc = subprocess.Popen(tied_to_parent([sys.executable, "-c", "import os; print(os.getpid())"]),
                            stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert int(out) == proc.pid


def test_the_program_dies_with_its_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        assert child.is_running()
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while child.is_running() and child.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, "the child outlived its parent"
    finally:
        parent.kill()


def test_a_missing_program_fails_in_the_parent() -> None:
    with pytest.raises(FileNotFoundError, match="no-such-program-xyz"):
        tied_to_parent(["no-such-program-xyz", "--flag"])
