"""Kubeconfig files read as kubectl reads them: merged, with one context picked out.

`KUBECONFIG` may list several files (`a:b`); as in client-go, the first file that names a cluster,
user or context wins for that name, the first `current-context` wins, and files that do not exist
are skipped. Relative file references (certificate-authority, client-certificate, client-key,
tokenFile, an exec command with a slash in it) are resolved against the folder of the file that
holds them; `~` is expanded. No credentials are loaded here: `credentials.py` does that.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

DEFAULT_KUBECONFIG: Final = "~/.kube/config"


class CredentialsError(Exception):
    """The kubeconfig or service account cannot give credentials; the message says why and where."""


@dataclass(frozen=True)
class Entry:
    """One named cluster, user or context, with the folder its relative paths are resolved against."""

    name: str
    body: Mapping[str, Any]
    folder: Path

    def path(self, key: str) -> str | None:
        """The file named under `key`, `~` expanded and made absolute; None when absent or empty."""
        return resolve_path(self.body.get(key), self.folder)


@dataclass(frozen=True)
class Selection:
    """What one context names: its cluster, its user and its namespace."""

    context: str
    cluster: Entry
    user: Entry
    namespace: str | None


def resolve_path(value: object, folder: Path) -> str | None:
    if not value:
        return None
    path = Path(os.path.expanduser(str(value)))
    return str(path if path.is_absolute() else folder / path)


def kubeconfig_paths(spec: str) -> list[Path]:
    """`a:b` (os.pathsep) as a list of files, `~` expanded, empty items dropped."""
    return [Path(os.path.expanduser(item)) for item in spec.split(os.pathsep) if item.strip()]


def _read(path: Path) -> Mapping[str, Any] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(f"kubeconfig {path}: {exc}") from exc
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CredentialsError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
    if not isinstance(config, Mapping):
        raise CredentialsError(f"kubeconfig {path} is not a mapping")
    return config


def _merge(paths: list[Path]) -> tuple[dict[str, dict[str, Entry]], str | None]:
    merged: dict[str, dict[str, Entry]] = {"clusters": {}, "users": {}, "contexts": {}}
    current: str | None = None
    found = False
    for path in paths:
        config = _read(path)
        if config is None:
            continue
        found = True
        folder = path.resolve().parent
        current = current or config.get("current-context") or None
        for kind, key in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for item in config.get(kind) or []:
                name = (item or {}).get("name")
                if name is not None and name not in merged[kind]:
                    merged[kind][name] = Entry(name=str(name), body=item.get(key) or {}, folder=folder)
    if not found:
        raise CredentialsError(f"no kubeconfig found at {os.pathsep.join(map(str, paths)) or '(empty)'}")
    return merged, current


def select(paths: list[Path], *, context: str | None = None) -> Selection:
    """The merged files' `context` (default: their current-context) with its cluster and user."""
    merged, current = _merge(paths)
    name = context or current
    where = os.pathsep.join(map(str, paths))
    if not name:
        raise CredentialsError(f"kubeconfig {where}: no current-context set and no context named")
    chosen = merged["contexts"].get(name)
    if chosen is None:
        raise CredentialsError(f"kubeconfig {where}: no context named {name!r}")
    cluster = merged["clusters"].get(str(chosen.body.get("cluster")))
    if cluster is None:
        raise CredentialsError(f"kubeconfig {where}: context {name!r} names cluster "
                               f"{chosen.body.get('cluster')!r}, which is not defined")
    user_name = chosen.body.get("user")
    # A context without a user (or naming an undefined one) talks to the cluster anonymously, as kubectl does.
    user = merged["users"].get(str(user_name)) if user_name else None
    if user_name and user is None:
        raise CredentialsError(f"kubeconfig {where}: context {name!r} names user {user_name!r}, "
                               "which is not defined")
    return Selection(context=name, cluster=cluster,
                     user=user or Entry(name="", body={}, folder=cluster.folder),
                     namespace=chosen.body.get("namespace") or None)
