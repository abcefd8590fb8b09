"""The Go-built binaries of the local control plane: where they live, and building the missing ones.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl come from the modules
pinned in `localfleet/gobuild/kubernetes/go.mod`, helm from `localfleet/gobuild/helm/go.mod`.
`go build -trimpath` writes them to a versioned cache outside the work tree
(`~/.cache/stt-fleet/k8s-<version>/bin`, or `$STT_LOCALFLEET_CACHE/k8s-<version>/bin`), and a
binary already there is reused while the build inputs (go.mod, go.sum, the flags) are the same:
`bin/.build-id` records them, and a change rebuilds everything. The Kubernetes binaries get their
version stamped in with `-ldflags -X`, as the Kubernetes release build does (without it they say
`v0.0.0-master`, `kubectl version` fails and the API server reports no version). The Go module proxy is the only download; a failed build raises
`BuildError` naming the binary, the package and the tail of go's output: there is no fallback.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

GOBUILD_DIR: Final = Path(__file__).resolve().parents[1] / "gobuild"
KUBERNETES_MODULE_DIR: Final = GOBUILD_DIR / "kubernetes"
HELM_MODULE_DIR: Final = GOBUILD_DIR / "helm"


@dataclass(frozen=True)
class Binary:
    name: str
    package: str
    module_dir: Path
    stamps: tuple[str, ...] = ()  # Go package paths whose version variables -ldflags -X sets


KUBE_VERSION_PACKAGES: Final = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


BINARIES: Final = (
    Binary("etcd", "go.etcd.io/etcd/server/v3", KUBERNETES_MODULE_DIR),
    Binary("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", KUBERNETES_MODULE_DIR, KUBE_VERSION_PACKAGES),
    Binary("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager", KUBERNETES_MODULE_DIR,
           KUBE_VERSION_PACKAGES),
    Binary("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler", KUBERNETES_MODULE_DIR, KUBE_VERSION_PACKAGES),
    Binary("kubectl", "k8s.io/kubernetes/cmd/kubectl", KUBERNETES_MODULE_DIR, KUBE_VERSION_PACKAGES),
    Binary("helm", "helm.sh/helm/v4/cmd/helm", HELM_MODULE_DIR, ("helm.sh/helm/v4/internal/version",)),
)


class BuildError(RuntimeError):
    """A binary could not be built; the message says which, from what, and go's last lines."""


def kubernetes_version(module_dir: Path = KUBERNETES_MODULE_DIR) -> str:
    """The pinned `k8s.io/kubernetes` version, read from go.mod (e.g. "v1.36.3")."""
    for line in (module_dir / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "k8s.io/kubernetes" and parts[1].startswith("v1."):
            return parts[1]
    raise BuildError(f"{module_dir / 'go.mod'} pins no k8s.io/kubernetes v1.x release")


def bin_dir() -> Path:
    """The versioned cache folder the binaries live in (it may not exist yet)."""
    cache = Path(os.environ.get("STT_LOCALFLEET_CACHE") or Path.home() / ".cache" / "stt-fleet")
    return cache / f"k8s-{kubernetes_version()}" / "bin"


def module_version(module_dir: Path, module: str) -> str:
    """The version `module_dir/go.mod` requires of `module` (e.g. helm.sh/helm/v4 -> "v4.3.2")."""
    for line in (module_dir / "go.mod").read_text().splitlines():
        parts = line.replace("require", "").split()
        if len(parts) >= 2 and parts[0] == module:
            return parts[1]
    raise BuildError(f"{module_dir / 'go.mod'} does not require {module}")


def ldflags(binary: Binary) -> str:
    """`-X` flags that stamp the release version in, as the upstream release builds do."""
    flags = []
    for package in binary.stamps:
        if package.startswith("helm.sh/"):
            flags.append(f"-X {package}.version={module_version(binary.module_dir, 'helm.sh/helm/v4')}")
            continue
        version = kubernetes_version()
        major, minor = version.lstrip("v").split(".")[:2]
        flags += [f"-X {package}.gitVersion={version}", f"-X {package}.gitMajor={major}",
                  f"-X {package}.gitMinor={minor}", f"-X {package}.gitTreeState=clean"]
    return " ".join(flags)


def build_id() -> str:
    """What the cached binaries were built from: the pinned modules and the flags."""
    digest = hashlib.sha256()
    for module_dir in (KUBERNETES_MODULE_DIR, HELM_MODULE_DIR):
        for name in ("go.mod", "go.sum"):
            digest.update((module_dir / name).read_bytes())
    for binary in BINARIES:
        digest.update(f"{binary.name} {binary.package} -trimpath {ldflags(binary)}\n".encode())
    return digest.hexdigest()[:16]


def missing(directory: Path | None = None) -> list[Binary]:
    """The binaries to (re)build: all of them when the cache was built from other inputs."""
    target = directory or bin_dir()
    stamp = target / ".build-id"
    if not stamp.is_file() or stamp.read_text().strip() != build_id():
        return list(BINARIES)
    return [b for b in BINARIES if not (target / b.name).is_file()]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def ensure_binaries(*, say: Callable[[str], None] = _say) -> Path:
    """Build every binary that is not in the cache yet; one progress line per binary. Returns the folder."""
    target = bin_dir()
    todo = missing(target)
    if not todo:
        return target
    (target / ".build-id").unlink(missing_ok=True)  # until every binary is rebuilt, the cache is not whole
    # Go's own installer puts it in /usr/local/go/bin, which a non-login shell may not have on PATH.
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        raise BuildError("the Go toolchain (`go`) is not on PATH: it builds the local control plane "
                         f"({', '.join(b.name for b in todo)})")
    target.mkdir(parents=True, exist_ok=True)
    say(f"building {len(todo)} control-plane binaries into {target} (a cold build takes a while on 2 cores)")
    for number, binary in enumerate(todo, 1):
        started = time.monotonic()
        say(f"  [{number}/{len(todo)}] {binary.name} ({binary.package}) ...")
        partial = target / f".{binary.name}.partial"
        result = subprocess.run(
            [go, "build", "-trimpath", "-ldflags", ldflags(binary), "-o", str(partial), binary.package],
            cwd=binary.module_dir, capture_output=True, text=True, check=False,
            env={**os.environ, "GOFLAGS": os.environ.get("GOFLAGS", "-buildvcs=false")},
        )
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-20:])
            raise BuildError(f"go build of {binary.name} ({binary.package}, module {binary.module_dir}) "
                             f"failed with exit code {result.returncode}:\n{tail}")
        partial.replace(target / binary.name)  # atomic: a half-written binary never looks cached
        say(f"  [{number}/{len(todo)}] {binary.name} built in {time.monotonic() - started:.0f} s")
    (target / ".build-id").write_text(build_id() + "\n")
    return target


def tool(name: str) -> Path:
    """The path of one cached binary; BuildError when it has not been built."""
    path = bin_dir() / name
    if not path.is_file():
        raise BuildError(f"{path} is missing: run `stt-localfleet build` (or `make test`) to build it")
    return path
