"""Container images the local node can "run": the project's own programs, installed on this host.

There is no image store: an image whose name contains `stt-operator` or `stt-server` maps to that
console script next to this interpreter (the venv), and the "image's filesystem" is the host's own
install. `image_paths` lists what that install needs to stay visible inside a pod's mount namespace
(the venv, the base interpreter, the checkout of an editable install), so the launcher can
re-expose any of them that a volume mount would hide. Any other image is refused with a waiting
reason a person can act on.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from stt_localfleet.launcherrors import IMAGE_NOT_LOCAL, LaunchError

PROGRAMS: Final = ("stt-operator", "stt-server")  # the first whose name the image contains wins
PACKAGES: Final = ("stt_server", "stt_operator", "stt_localfleet")
SYSTEM_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class LocalImage:
    """What a container image means here: its entrypoint program and the image's environment."""

    image: str
    program: str  # "stt-server" or "stt-operator"
    entrypoint: tuple[str, ...]
    env: Mapping[str, str]  # like a Dockerfile's ENV: PATH with the venv first
    image_id: str


def program_path(program: str) -> str:
    """The console script `program` next to this interpreter (else the bare name, found on PATH)."""
    candidate = Path(sys.executable).with_name(program)
    return str(candidate) if candidate.exists() else program


def server_executable() -> str:
    """The `stt-server` next to this interpreter (the local stand-in for the image's entrypoint)."""
    return program_path("stt-server")


def image_name(image: str) -> str:
    """The repository's last path component: `ghcr.io/x/stt-server:1.2@sha256:..` -> `stt-server`."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


def resolve_image(image: str, *, executables: Mapping[str, str] | None = None) -> LocalImage:
    """Map `image` to a local program; LaunchError(ImageNotLocal) for anything else.

    `executables` overrides where a program lives (tests run stand-ins), by program name.
    """
    name = image_name(image)
    for program in PROGRAMS:
        if program in name:
            path = (executables or {}).get(program) or program_path(program)
            bin_dir = str(Path(sys.executable).parent)
            return LocalImage(image=image, program=program, entrypoint=(path,),
                              env={"PATH": f"{bin_dir}:{SYSTEM_PATH}"}, image_id=f"localfleet://{path}")
    raise LaunchError(IMAGE_NOT_LOCAL, f"image {image} is not one the local fleet can run: only *stt-server* "
                                       "and *stt-operator* images map to local programs")


def _checkout_of(package_dir: Path) -> Path:
    for parent in package_dir.parents:
        if (parent / "pyproject.toml").exists() or (parent / ".git").exists():
            return parent
    return package_dir.parent


def image_paths() -> tuple[Path, ...]:
    """Host directories the local "image" consists of (real paths, outermost only)."""
    found = {Path(os.path.realpath(p)) for p in (sys.prefix, sys.base_prefix, Path(sys.executable).parent)}
    prefix = Path(os.path.realpath(sys.prefix))
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or ()) if spec else ():
            real = Path(os.path.realpath(location))
            if not real.is_relative_to(prefix):  # an editable install: the checkout is part of the image
                found.add(_checkout_of(real))
    return outermost(found)


def outermost(paths: set[Path]) -> tuple[Path, ...]:
    """Drop paths inside another path of the set."""
    return tuple(sorted(p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)))
