"""The session registry: who holds which session, and the session limits.

A session is born by ``CreateSession`` (reserved, waiting for its stream) or by a stream's inline
config, is claimed by exactly one ``StreamingRecognize`` call, and ends when that call ends. Open
sessions (reserved or streaming) count against ``limits.max_sessions`` (ERR1011) and
``limits.max_sessions_per_api_key`` (ERR1012). A reserved session not claimed within
``limits.session_ttl_sec`` expires (ERR1009 when someone tries it later).
"""

from __future__ import annotations

import collections
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from stt_server.config import LimitsSettings
from stt_server.errors import ErrorCode, SttError
from stt_server.grpc_service.stream_config import SessionConfig
from stt_server.metrics import ServerMetrics

log = logging.getLogger(__name__)

# how many expired ids to remember, so a late client hears "expired" rather than "unknown"
_EXPIRED_MEMORY: Final = 4096


@dataclass
class Session:
    """One open session; ``streaming`` once a StreamingRecognize call claimed it."""

    session_id: str
    key_id: str
    config: SessionConfig
    created_at: float
    streaming: bool = False
    closed: bool = field(default=False, repr=False)


class SessionRegistry:
    """Creates, claims, expires and releases sessions, keeping the gauges in step."""

    def __init__(
        self, limits: LimitsSettings, *, metrics: ServerMetrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = limits
        self._metrics = metrics
        self.clock = clock  # public so tests can move time forward
        self._sessions: dict[str, Session] = {}
        self._per_key: collections.Counter[str] = collections.Counter()
        self._expired: collections.OrderedDict[str, None] = collections.OrderedDict()
        metrics.max_sessions.set(limits.max_sessions)
        metrics.active_sessions.set(0)

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def streaming_count(self) -> int:
        return sum(1 for s in self._sessions.values() if s.streaming)

    def per_key_counts(self) -> dict[str, int]:
        """Open sessions per hashed API key id (for ``/metrics.json``)."""
        return {key: count for key, count in self._per_key.items() if count > 0}

    def create(self, *, key_id: str, config: SessionConfig, streaming: bool = False) -> Session:
        """A new session for ``key_id``, or ERR1011 / ERR1012 when a limit is reached."""
        self.expire_stale()
        if len(self._sessions) >= self._limits.max_sessions:
            self._metrics.session_limit_rejects.inc()
            raise SttError(ErrorCode.MAX_SESSIONS, limit=self._limits.max_sessions)
        per_key_cap = min(self._limits.max_sessions_per_api_key, self._limits.max_sessions)
        if self._per_key[key_id] >= per_key_cap:
            self._metrics.record_rate_limit_block("sessions_per_key")
            raise SttError(ErrorCode.API_KEY_SESSION_CAP, limit=per_key_cap)
        session = Session(
            session_id=secrets.token_hex(16), key_id=key_id, config=config, created_at=self.clock(),
            streaming=streaming,
        )
        self._sessions[session.session_id] = session
        self._per_key[key_id] += 1
        self._publish(key_id)
        return session

    def claim(self, session_id: str, *, key_id: str) -> Session:
        """Hand a reserved session to its stream (ERR1008 unknown, ERR1009 expired, ERR1010 in use)."""
        self.expire_stale()
        session = self._sessions.get(session_id)
        # another key's session is reported as unknown: ids must not be probeable across keys
        if session is None or session.key_id != key_id:
            if session_id in self._expired:
                raise SttError(ErrorCode.EXPIRED_SESSION, session_id=session_id, ttl=f"{self._limits.session_ttl_sec:g}")
            raise SttError(ErrorCode.UNKNOWN_SESSION, session_id=session_id[:64])
        if session.streaming:
            raise SttError(ErrorCode.SESSION_IN_USE, session_id=session_id)
        session.streaming = True
        return session

    def release(self, session: Session) -> None:
        """End a session (idempotent)."""
        if session.closed:
            return
        session.closed = True
        self._sessions.pop(session.session_id, None)
        self._per_key[session.key_id] -= 1
        self._publish(session.key_id)

    def expire_stale(self) -> int:
        """Drop reserved sessions older than ``session_ttl_sec``; returns how many."""
        deadline = self.clock() - self._limits.session_ttl_sec
        stale = [s for s in self._sessions.values() if not s.streaming and s.created_at <= deadline]
        for session in stale:
            self.release(session)
            self._expired[session.session_id] = None
            while len(self._expired) > _EXPIRED_MEMORY:
                self._expired.popitem(last=False)
            log.info("Expired session_id=%s unused after %gs", session.session_id, self._limits.session_ttl_sec)
        return len(stale)

    def _publish(self, key_id: str) -> None:
        self._metrics.active_sessions.set(len(self._sessions))
        count = self._per_key[key_id]
        if count <= 0:
            del self._per_key[key_id]
            try:
                self._metrics.api_key_sessions.remove(key_id)
            except KeyError:
                pass
        else:
            self._metrics.api_key_sessions.labels(key_id=key_id).set(count)
