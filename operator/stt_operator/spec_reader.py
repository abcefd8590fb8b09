"""Typed reads from an untrusted mapping, with the dotted field path in every error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class SpecError(ValueError):
    """An SttServer spec the operator cannot build; `field` is the dotted path, `message` why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Reader:
    """Reads fields of one section (`path` is its dotted location, e.g. `spec.service`)."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise SpecError(path, f"must be an object, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.path = path

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def child(self, key: str) -> Reader:
        return Reader(self.data.get(key), f"{self.path}.{key}")

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.data.get(key)
        if value is None:
            if required or default is None:
                raise SpecError(f"{self.path}.{key}", "is required")
            return default
        if not isinstance(value, str):
            raise SpecError(f"{self.path}.{key}", f"must be a string, got {type(value).__name__}")
        return value

    def optional_string(self, key: str) -> str | None:
        return self.string(key) if self.has(key) else None

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise SpecError(f"{self.path}.{key}", f"must be true or false, got {value!r}")
        return value

    def integer(self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.optional_integer(key, minimum=minimum, maximum=maximum)
        return default if value is None else value

    def optional_integer(self, key: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{self.path}.{key}", f"must be an integer, got {value!r}")
        self._check_range(key, value, minimum, maximum)
        return value

    def number(self, key: str, default: float, *, minimum: float | None = None, maximum: float | None = None,
               exclusive_minimum: bool = False) -> float:
        value = self.optional_number(key, minimum=minimum, maximum=maximum, exclusive_minimum=exclusive_minimum)
        return default if value is None else value

    def optional_number(self, key: str, *, minimum: float | None = None, maximum: float | None = None,
                        exclusive_minimum: bool = False) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{self.path}.{key}", f"must be a number, got {value!r}")
        if exclusive_minimum and minimum is not None and value <= minimum:
            raise SpecError(f"{self.path}.{key}", f"must be greater than {minimum}, got {value}")
        self._check_range(key, value, minimum, maximum)
        return float(value)

    def enum(self, key: str, default: str, allowed: Sequence[str]) -> str:
        value = self.string(key, default)
        if value not in allowed:
            raise SpecError(f"{self.path}.{key}", f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise SpecError(f"{self.path}.{key}", f"must be an object, got {type(value).__name__}")
        return value

    def list(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise SpecError(f"{self.path}.{key}", f"must be a list, got {type(value).__name__}")
        return value

    def _check_range(self, key: str, value: float, minimum: float | None, maximum: float | None) -> None:
        if minimum is not None and value < minimum:
            raise SpecError(f"{self.path}.{key}", f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise SpecError(f"{self.path}.{key}", f"must be at most {maximum}, got {value}")
