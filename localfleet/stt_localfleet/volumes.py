"""A pod's volumes as host directories: what each one holds (pure), and writing it atomically.

`plan_volumes` turns `spec.volumes` plus the fetched ConfigMaps/Secrets into a `VolumePlan` per
volume: an emptyDir (a fresh directory), a hostPath (used in place, after its `type` check), or a
set of files (configMap, secret, downwardAPI, projected), where service-account tokens are listed
as `TokenItem`s for the caller to obtain through the TokenRequest API. `write_files` replaces each
file by rename, so a process reading through its bind mount never sees half a file, and removes
files that are no longer part of the volume. `MountVolume`-style failures raise LaunchError with
the `ContainerCreating` reason, as the kubelet keeps such a pod waiting until the source appears.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from stt_localfleet.envvars import PodFacts, field_value, resource_value, source_data
from stt_localfleet.launcherrors import CONTAINER_CREATING, LaunchError

DEFAULT_MODE: Final = 0o644
DEFAULT_TOKEN_SECONDS: Final = 3600
FILE_KINDS: Final = ("configMap", "secret", "downwardAPI", "projected")


@dataclass(frozen=True)
class FileItem:
    path: str  # relative to the volume's directory
    content: bytes
    mode: int = DEFAULT_MODE


@dataclass(frozen=True)
class TokenItem:
    """A projected serviceAccountToken: the file `path` holds a token for these audiences."""

    path: str
    audience: str
    expiration_seconds: int
    mode: int = DEFAULT_MODE


@dataclass(frozen=True)
class VolumePlan:
    name: str
    kind: str  # "emptyDir", "hostPath" or "files"
    host_path: Path | None = None
    files: tuple[FileItem, ...] = ()
    tokens: tuple[TokenItem, ...] = ()
    host_path_type: str = ""  # hostPath.type
    medium: str = ""  # emptyDir.medium ("Memory" is served from the same disk here)


def _failed(volume: str, message: str) -> LaunchError:
    return LaunchError(CONTAINER_CREATING, f'MountVolume.SetUp failed for volume "{volume}" : {message}')


def _keyed_items(volume: str, kind: str, name: str, ref: Mapping[str, Any],
                 store: Mapping[str, Mapping[str, Any] | None], default_mode: int) -> list[FileItem]:
    data = source_data(kind, name, store)
    if data is None:
        if ref.get("optional"):
            return []
        raise _failed(volume, f'{kind} "{name}" not found')
    items = ref.get("items")
    if not items:
        return [FileItem(key, value, default_mode) for key, value in sorted(data.items())]
    out = []
    for item in items:
        if item["key"] not in data:
            if ref.get("optional"):
                continue
            raise _failed(volume, f"{kind} references non-existent config key: {item['key']}")
        out.append(FileItem(str(item["path"]), data[item["key"]], int(item.get("mode", default_mode))))
    return out


def _downward_items(volume: str, pod: Mapping[str, Any], items: Iterable[Mapping[str, Any]],
                    facts: PodFacts, default_mode: int) -> list[FileItem]:
    out = []
    containers = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or ()}
    for item in items:
        if "fieldRef" in item:
            value = field_value(pod, str(item["fieldRef"]["fieldPath"]), facts)
        elif "resourceFieldRef" in item:
            ref = item["resourceFieldRef"]
            container = containers.get(ref.get("containerName")) or {}
            value = resource_value(container, ref, facts)
        else:
            raise _failed(volume, f"downwardAPI item {item.get('path')!r} has no fieldRef or resourceFieldRef")
        out.append(FileItem(str(item["path"]), value.encode(), int(item.get("mode", default_mode))))
    return out


def _projected(volume: Mapping[str, Any], pod: Mapping[str, Any], *,
               configmaps: Mapping[str, Mapping[str, Any] | None],
               secrets: Mapping[str, Mapping[str, Any] | None], facts: PodFacts) -> VolumePlan:
    name = str(volume["name"])
    projected = volume["projected"]
    mode = int(projected.get("defaultMode", DEFAULT_MODE))
    files: dict[str, FileItem] = {}
    tokens: list[TokenItem] = []
    for source in projected.get("sources") or ():
        if "configMap" in source:
            ref = source["configMap"]
            found = _keyed_items(name, "configmap", ref["name"], ref, configmaps, mode)
        elif "secret" in source:
            ref = source["secret"]
            found = _keyed_items(name, "secret", ref["name"], ref, secrets, mode)
        elif "downwardAPI" in source:
            found = _downward_items(name, pod, source["downwardAPI"].get("items") or (), facts, mode)
        elif "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            tokens.append(TokenItem(str(token["path"]), str(token.get("audience") or ""),
                                    int(token.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS), mode))
            continue
        else:
            raise _failed(name, f"projected source {sorted(source)} is not supported by the local kubelet")
        files.update({item.path: item for item in found})
    return VolumePlan(name=name, kind="files", files=tuple(files.values()), tokens=tuple(tokens))


def plan_volume(volume: Mapping[str, Any], pod: Mapping[str, Any], *,
                configmaps: Mapping[str, Mapping[str, Any] | None],
                secrets: Mapping[str, Mapping[str, Any] | None], facts: PodFacts) -> VolumePlan:
    """One volume's plan; raises LaunchError(ContainerCreating) when it cannot be set up (yet)."""
    name = str(volume["name"])
    if "emptyDir" in volume:
        return VolumePlan(name=name, kind="emptyDir", medium=str((volume["emptyDir"] or {}).get("medium", "")))
    if "hostPath" in volume:
        return VolumePlan(name=name, kind="hostPath", host_path=Path(volume["hostPath"]["path"]),
                          host_path_type=str(volume["hostPath"].get("type") or ""))
    if "configMap" in volume:
        ref = volume["configMap"]
        mode = int(ref.get("defaultMode", DEFAULT_MODE))
        return VolumePlan(name=name, kind="files", files=tuple(
            _keyed_items(name, "configmap", ref["name"], ref, configmaps, mode)))
    if "secret" in volume:
        ref = volume["secret"]
        mode = int(ref.get("defaultMode", DEFAULT_MODE))
        return VolumePlan(name=name, kind="files", files=tuple(
            _keyed_items(name, "secret", ref["secretName"], ref, secrets, mode)))
    if "downwardAPI" in volume:
        ref = volume["downwardAPI"]
        mode = int(ref.get("defaultMode", DEFAULT_MODE))
        return VolumePlan(name=name, kind="files", files=tuple(
            _downward_items(name, pod, ref.get("items") or (), facts, mode)))
    if "projected" in volume:
        return _projected(volume, pod, configmaps=configmaps, secrets=secrets, facts=facts)
    kinds = ", ".join(k for k in volume if k != "name")
    raise _failed(name, f"{kinds} volumes are not supported by the local kubelet "
                        "(supported: configMap, secret, emptyDir, hostPath, downwardAPI, projected)")


def plan_volumes(pod: Mapping[str, Any], *, configmaps: Mapping[str, Mapping[str, Any] | None],
                 secrets: Mapping[str, Mapping[str, Any] | None], facts: PodFacts) -> dict[str, VolumePlan]:
    """Every volume of the pod, by name."""
    return {str(v["name"]): plan_volume(v, pod, configmaps=configmaps, secrets=secrets, facts=facts)
            for v in (pod.get("spec") or {}).get("volumes") or ()}


def check_host_path(path: Path, kind: str) -> None:
    """The hostPath `type` check (DirectoryOrCreate / FileOrCreate create what is missing)."""
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    wanted = {"Directory": path.is_dir, "DirectoryOrCreate": path.is_dir, "File": path.is_file,
              "FileOrCreate": path.is_file, "Socket": path.is_socket, "CharDevice": path.is_char_device,
              "BlockDevice": path.is_block_device}.get(kind)
    if wanted is not None and not wanted():
        raise LaunchError(CONTAINER_CREATING, f"hostPath type check failed: {path} is not a {kind}")
    if not path.exists():
        raise LaunchError(CONTAINER_CREATING, f"hostPath {path} does not exist")


def _safe_relative(directory: Path, rel: str) -> Path:
    target = (directory / rel).resolve()
    if rel.startswith("/") or ".." in Path(rel).parts or not target.is_relative_to(directory.resolve()):
        raise LaunchError(CONTAINER_CREATING, f"volume file path {rel!r} must be relative and stay inside it")
    return directory / rel


def write_files(directory: Path, files: Mapping[str, tuple[bytes, int]], *, prune: bool = True) -> bool:
    """Make `directory` hold exactly `files` (relative path -> content, mode); True when anything changed.

    Each file is written to a temporary name and renamed over the old one, so readers see either the
    old or the new content, never a partial file. `prune=False` leaves other files alone.
    """
    directory.mkdir(parents=True, exist_ok=True)
    changed = False
    wanted = {_safe_relative(directory, rel): spec for rel, spec in files.items()}
    for path, (content, mode) in wanted.items():
        try:
            same = path.read_bytes() == content and (path.stat().st_mode & 0o7777) == mode
        except OSError:
            same = False
        if same:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, content)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        changed = True
    for path in sorted(directory.rglob("*"), reverse=True) if prune else ():
        if path.is_file() and path not in wanted:
            path.unlink()
            changed = True
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return changed
