"""The three PATCH flavours of the Kubernetes API, as pure functions over JSON-like data.

- JSON merge patch (RFC 7386, `application/merge-patch+json`): what kopf and stt-operator send.
- JSON patch (RFC 6902, `application/json-patch+json`): kopf uses it with a `test` on
  `/metadata/resourceVersion` for finalizers; a failed `test` is a 422 on a real server.
- Strategic merge patch (`application/strategic-merge-patch+json`, kubectl's default): merge
  patch plus merging of a few well-known lists by their merge key. This is a subset: only the
  lists in `MERGE_KEYS` are merged, and only the `$patch: delete` directive is understood.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

# list field name -> the key that identifies an element (from the Kubernetes OpenAPI patch strategy).
MERGE_KEYS: Final[Mapping[str, str]] = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "env": "name",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
}


class PatchError(ValueError):
    """A patch that cannot be applied (422 Unprocessable Entity on the server)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: dicts merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, *, field: str | None = None) -> Any:
    """Merge patch, except that lists named in MERGE_KEYS merge element-wise by their key."""
    if isinstance(patch, list) and isinstance(target, list) and field is not None and field in MERGE_KEYS:
        return _merge_list(target, patch, key=MERGE_KEYS[field])
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # directives such as $retainKeys / $setElementOrder are not emulated
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value, field=key)
    return result


def _merge_list(target: list[Any], patch: list[Any], *, key: str) -> list[Any]:
    result = [copy.deepcopy(item) for item in target]
    for item in patch:
        if not isinstance(item, Mapping) or key not in item:
            raise PatchError(f"list elements must be objects with the merge key {key!r}")
        index = next((i for i, old in enumerate(result) if old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append({k: v for k, v in item.items() if not k.startswith("$")})
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 on a deep copy; raises PatchError for a failed `test` or a bad path."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        kind, path = op.get("op"), op.get("path")
        if not isinstance(path, str):
            raise PatchError(f"operation without a path: {op!r}")
        if kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"test failed at {path}")
        elif kind == "add":
            doc = _put(doc, path, copy.deepcopy(op.get("value")), insert=True)
        elif kind == "replace":
            _get(doc, path)  # must exist
            doc = _put(doc, path, copy.deepcopy(op.get("value")), insert=False)
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind in ("move", "copy"):
            value = _get(doc, op.get("from", ""))
            if kind == "move":
                doc = _remove(doc, op["from"])
            doc = _put(doc, path, copy.deepcopy(value), insert=True)
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return doc


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"bad JSON pointer {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _get(doc: Any, path: str) -> Any:
    node = doc
    for token in _tokens(path):
        try:
            node = node[int(token)] if isinstance(node, list) else node[token]
        except (KeyError, IndexError, ValueError, TypeError):
            raise PatchError(f"path {path} does not exist") from None
    return node


def _parent(doc: Any, path: str) -> tuple[Any, str]:
    tokens = _tokens(path)
    if not tokens:
        raise PatchError("cannot address the document root here")
    parent = _get(doc, "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1])) \
        if len(tokens) > 1 else doc
    return parent, tokens[-1]


def _put(doc: Any, path: str, value: Any, *, insert: bool) -> Any:
    if path == "":
        return value
    parent, token = _parent(doc, path)
    if isinstance(parent, list):
        index = len(parent) if token == "-" else _index(token, len(parent) + (1 if insert else 0))
        if insert:
            parent.insert(index, value)
        else:
            parent[index] = value
    elif isinstance(parent, dict):
        parent[token] = value
    else:
        raise PatchError(f"path {path} does not lead into an object or a list")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parent, token = _parent(doc, path)
    try:
        if isinstance(parent, list):
            del parent[_index(token, len(parent))]
        else:
            del parent[token]
    except (KeyError, TypeError):
        raise PatchError(f"path {path} does not exist") from None
    return doc


def _index(token: str, size: int) -> int:
    if not token.isdigit() or int(token) >= size:
        raise PatchError(f"bad list index {token!r}")
    return int(token)


def apply_patch(target: Any, body: Any, *, content_type: str) -> Any:
    """Dispatch on the Content-Type as the API server does; unknown types are a PatchError (415)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/merge-patch+json":
        return merge_patch(target, body)
    if kind == "application/strategic-merge-patch+json":
        return strategic_merge_patch(target, body)
    if kind == "application/json-patch+json":
        return json_patch(target, body)
    raise UnsupportedPatchType(kind)


class UnsupportedPatchType(PatchError):
    """Content-Type not one of the three patch types (415 on a real server; apply-patch included)."""
