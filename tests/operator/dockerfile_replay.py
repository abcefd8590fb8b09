"""Replay a Dockerfile's build stage without Docker: same files, same extras, same install command.

`parse_build` reads what the build stage copies into /src, the default of `ARG EXTRAS`, the RUN line
that installs the project and the final ENTRYPOINT. `replay` lays out that build context in a
directory, makes a fresh venv and runs the RUN line there (with the venv first on PATH, as the
image's `ENV PATH=/opt/venv/bin:$PATH` does). Only `--no-cache-dir` is dropped, so repeated runs
use pip's download cache.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
from dataclasses import dataclass

REPO = pathlib.Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BuildStep:
    copies: tuple[str, ...]  # repository paths the build stage COPYs into /src
    extras: str  # ARG EXTRAS default
    install: str  # the RUN command that installs the project
    entrypoint: tuple[str, ...]


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def parse_build(dockerfile: pathlib.Path) -> BuildStep:
    """The first stage's COPY sources, EXTRAS default and pip RUN line; the last ENTRYPOINT."""
    copies: list[str] = []
    extras = ""
    install = ""
    entrypoint: tuple[str, ...] = ()
    stage = 0
    for line in _logical_lines(dockerfile.read_text()):
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        elif stage == 1 and word == "ARG" and rest.startswith("EXTRAS="):
            extras = rest.removeprefix("EXTRAS=")
        elif stage == 1 and word == "COPY" and not rest.startswith("--from"):
            copies.extend(rest.split()[:-1])
        elif stage == 1 and word == "RUN" and "pip install" in rest:
            install = rest
        elif word == "ENTRYPOINT":
            entrypoint = tuple(json.loads(rest))
    if not (copies and install and entrypoint):
        raise ValueError(f"{dockerfile}: no COPY, pip RUN line or ENTRYPOINT found")
    return BuildStep(copies=tuple(copies), extras=extras, install=install, entrypoint=entrypoint)


def layout_context(step: BuildStep, target: pathlib.Path) -> None:
    """Copy what the build stage copies, minus what .dockerignore keeps out (caches)."""
    target.mkdir(parents=True)
    for source in step.copies:
        path = REPO / source
        if path.is_dir():
            shutil.copytree(path, target / source,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(path, target / source)


def replay(step: BuildStep, workdir: pathlib.Path, *, timeout: float = 600) -> pathlib.Path:
    """Run the build stage's install in a fresh venv under `workdir`; returns the venv's bin dir."""
    context, venv = workdir / "src", workdir / "venv"
    layout_context(step, context)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "EXTRAS": step.extras,
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    command = step.install.replace("--no-cache-dir ", "")
    result = subprocess.run(["bash", "-c", command], cwd=context, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(f"replayed RUN failed ({result.returncode}): {command}\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return bin_dir


def site_packages_bytes(bin_dir: pathlib.Path) -> int:
    """Installed size of the venv's site-packages, without pip and setuptools (not in the image's use)."""
    lib = next((bin_dir.parent / "lib").glob("python3*/site-packages"))
    skip = ("pip", "setuptools", "_distutils_hack")
    return sum(f.stat().st_size for f in lib.rglob("*")
               if f.is_file() and f.relative_to(lib).parts[0].split("-")[0] not in skip)
