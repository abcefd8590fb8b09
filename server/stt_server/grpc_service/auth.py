"""API keys: loaded from config and a mounted file, kept only as SHA-256 digests, compared in constant time.

Keys are optional: with none configured every call is allowed (local use). With keys, a call must
carry one in metadata ``x-api-key`` or ``authorization: Bearer <key>``. The raw key is never stored
or logged; other modules see only ``key_id``, a short hash prefix safe for logs and metric labels.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from stt_server.config import AuthSettings, ConfigError
from stt_server.errors import ErrorCode, SttError

API_KEY_HEADER: Final = "x-api-key"
ANONYMOUS: Final = "anonymous"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id_for(key: str) -> str:
    """The short public id of a key (first 12 hex digits of its SHA-256)."""
    return _digest(key).hex()[:12]


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``key_id`` is ``anonymous`` when keys are not required."""

    key_id: str


def read_keys_file(path: Path) -> list[str]:
    """One key per line; blank lines and ``#`` comments skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError("auth.api_keys_file", f"cannot read {path}: {exc.strerror}") from exc
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


class ApiKeyAuthenticator:
    """Checks call metadata against the configured keys."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests: tuple[bytes, ...] = tuple(_digest(key) for key in keys if key)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> ApiKeyAuthenticator:
        keys = list(settings.api_keys)
        if settings.api_keys_file is not None:
            keys.extend(read_keys_file(settings.api_keys_file))
        return cls(keys)

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal:
        """The caller's principal, or ``SttError`` (ERR1018 missing / ERR1019 invalid)."""
        key = extract_key(metadata)
        if not self.required:
            return Principal(key_id_for(key) if key else ANONYMOUS)
        if key is None:
            raise SttError(ErrorCode.MISSING_API_KEY)
        candidate = _digest(key)
        # compare against every digest so timing does not reveal which (or whether one) matched
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(candidate, known)
        if not matched:
            raise SttError(ErrorCode.INVALID_API_KEY)
        return Principal(key_id_for(key))


def extract_key(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The API key from ``x-api-key`` or ``authorization: Bearer``; ``None`` when absent."""
    for name, value in metadata or ():
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if name.lower() == API_KEY_HEADER and text.strip():
            return text.strip()
        if name.lower() == "authorization" and text.lower().startswith("bearer ") and text[7:].strip():
            return text[7:].strip()
    return None
