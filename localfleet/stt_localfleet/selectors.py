"""Label and field selectors as the list and watch endpoints accept them (`?labelSelector=`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_SET_RE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


class SelectorError(ValueError):
    """A selector the API server would reject with 400 Bad Request."""


def _split(selector: str) -> list[str]:
    # Commas separate requirements, except inside the parentheses of a set-based requirement.
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _requirement(text: str) -> Callable[[Mapping[str, str]], bool]:
    if (match := _SET_RE.match(text)) is not None:
        key, operator, raw = match.groups()
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for operator in ("!=", "==", "="):
        if operator in text:
            key, value = (s.strip() for s in text.split(operator, 1))
            if operator == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if text.startswith("!"):
        key = text[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[\w./-]+", text):
        return lambda labels: text in labels
    raise SelectorError(f"unable to parse requirement: {text!r}")


def label_predicate(selector: str | None) -> Predicate:
    """Compile `a=b,c!=d,e in (f,g),!h,i` into a predicate over whole objects."""
    if not selector:
        return lambda obj: True
    requirements = [_requirement(part) for part in _split(selector)]

    def check(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(req(labels) for req in requirements)
    return check


_FIELDS = {
    "metadata.name": lambda o: (o.get("metadata") or {}).get("name"),
    "metadata.namespace": lambda o: (o.get("metadata") or {}).get("namespace"),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName"),
    "status.phase": lambda o: (o.get("status") or {}).get("phase"),
    "involvedObject.name": lambda o: (o.get("involvedObject") or {}).get("name"),
    "involvedObject.uid": lambda o: (o.get("involvedObject") or {}).get("uid"),
}


def field_predicate(selector: str | None) -> Predicate:
    """Field selectors: only the equality forms on the fields in `_FIELDS` (others are a 400)."""
    if not selector:
        return lambda obj: True
    checks: list[tuple[Callable[[Mapping[str, Any]], Any], str, bool]] = []
    for part in _split(selector):
        negate = "!=" in part
        key, value = (s.strip() for s in re.split(r"!=|==|=", part, maxsplit=1))
        if key not in _FIELDS:
            raise SelectorError(f"field label not supported: {key}")
        checks.append((_FIELDS[key], value, negate))
    return lambda obj: all((getter(obj) == value) != negate for getter, value, negate in checks)
