"""API errors the local API server answers with, shaped as the real `Status` objects."""

from __future__ import annotations

from typing import Any

from kmock import KubernetesError


def status_error(code: int, reason: str, message: str, *, details: dict[str, Any] | None = None
                 ) -> KubernetesError:
    """A kmock KubernetesError: kmock renders it as a `kind: Status` body with this code."""
    return KubernetesError(status=code, reason=reason, message=message, details=details or {})


def not_found(kind_plural: str, name: str) -> KubernetesError:
    return status_error(404, "NotFound", f'{kind_plural} "{name}" not found',
                        details={"name": name, "kind": kind_plural})


def already_exists(kind_plural: str, name: str) -> KubernetesError:
    return status_error(409, "AlreadyExists", f'{kind_plural} "{name}" already exists',
                        details={"name": name, "kind": kind_plural})


def conflict(kind_plural: str, name: str) -> KubernetesError:
    return status_error(
        409, "Conflict",
        f'Operation cannot be fulfilled on {kind_plural} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "kind": kind_plural})


def invalid(kind: str, name: str, causes: list[dict[str, str]]) -> KubernetesError:
    summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    return status_error(422, "Invalid", f'{kind} "{name}" is invalid: {summary}',
                        details={"name": name, "kind": kind, "causes": causes})


def bad_request(message: str) -> KubernetesError:
    return status_error(400, "BadRequest", message)
