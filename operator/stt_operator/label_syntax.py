"""Kubernetes label syntax, checked before a user's labels reach a child object.

A label key is an optional DNS-1123 subdomain prefix (at most 253 characters) and '/', then a name
of at most 63 characters: alphanumerics, '-', '_' and '.', beginning and ending alphanumeric. A
value is empty or follows the same rules as that name. The API server rejects anything else with a
422 on the child, after the other children were already written; these checks turn it into a
`SpecError` naming the field instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from stt_operator.spec_reader import SpecError

NAME_MAX: Final = 63
PREFIX_MAX: Final = 253
_NAME: Final = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NAME_RULE: Final = "at most 63 characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit"


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a label key, or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "has an empty prefix before '/'"
    if slash and (len(prefix) > PREFIX_MAX or not _PREFIX.match(prefix)):
        return f"prefix {prefix!r} must be a DNS subdomain (lowercase, at most {PREFIX_MAX} characters)"
    if len(name) > NAME_MAX or not _NAME.match(name):
        return f"name {name!r} must be {NAME_RULE}"
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a label value, or None (empty is allowed)."""
    if value == "" or (len(value) <= NAME_MAX and _NAME.match(value)):
        return None
    return f"must be empty or {NAME_RULE}"


def check_labels(labels: Mapping[str, Any], path: str) -> dict[str, str]:
    """`labels` as a str -> str dict, or SpecError(`path`, why) naming the first bad key or value."""
    for key, value in labels.items():
        if not isinstance(key, str) or (problem := label_key_problem(key)) is not None:
            raise SpecError(path, f"label key {key!r} is not valid: {problem or 'not a string'}")
        if not isinstance(value, str):
            raise SpecError(path, f"label values must be strings, got {type(value).__name__} for {key!r}")
        if (problem := label_value_problem(value)) is not None:
            raise SpecError(path, f"label value {value!r} of {key!r} {problem}")
    return dict(labels)
