"""`kubectl get`-style output for the demo: a CRD's printer columns, rendered from live objects."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Any

_FILTER = re.compile(r'^(?P<field>\w+)\[\?\(@\.(?P<key>\w+)\s*==\s*["\'](?P<value>[^"\']*)["\']\)\]$')


def json_path(obj: Any, path: str) -> Any:
    """The subset of JSONPath printer columns use: `.a.b`, `.a[0]`, `.a[*].b` (a list),
    `.a[?(@.type=="Ready")].b`."""
    parts = [p for p in re.split(r"\.(?![^\[]*\])", path.strip().lstrip(".")) if p]
    current: Any = obj
    for index, part in enumerate(parts):
        if current is None:
            return None
        if part.endswith("[*]"):
            items = current.get(part[:-3]) if isinstance(current, Mapping) else None
            rest = "." + ".".join(parts[index + 1:]) if index + 1 < len(parts) else ""
            values = [json_path(item, rest) if rest else item for item in items or ()]
            return [v for v in values if v is not None] or None
        match = _FILTER.match(part)
        if match:
            items = current.get(match["field"]) if isinstance(current, Mapping) else None
            current = next((i for i in items or () if str(i.get(match["key"])) == match["value"]), None)
            continue
        indexed = re.match(r"^(\w+)\[(\d+)\]$", part)
        if indexed:
            items = current.get(indexed[1]) if isinstance(current, Mapping) else None
            at = int(indexed[2])
            current = items[at] if isinstance(items, list) and len(items) > at else None
            continue
        current = current.get(part) if isinstance(current, Mapping) else None
    return current


def age(timestamp: str | None, *, now: datetime.datetime | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.datetime.fromisoformat(timestamp)
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def printer_table(crd: Mapping[str, Any], objects: Sequence[Mapping[str, Any]]) -> str:
    """NAME plus the served version's additionalPrinterColumns (priority 0), as kubectl prints them."""
    versions = (crd.get("spec") or {}).get("versions") or [{}]
    version = next((v for v in versions if v.get("served")), versions[0])
    columns = [c for c in version.get("additionalPrinterColumns") or () if not c.get("priority")]
    header = ["NAME", *(c["name"].upper() for c in columns)]
    rows = [header]
    for obj in objects:
        row = [obj["metadata"]["name"]]
        for column in columns:
            value = json_path(obj, column["jsonPath"])
            if column.get("type") == "date":
                row.append(age(value))
            elif isinstance(value, list):
                row.append(",".join(map(str, value)))  # kubectl joins a list with commas
            else:
                row.append("<none>" if value is None else str(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)
