"""Shared fixtures: synthesized speech (``tests/audio_fixtures.py``) and one loaded Whisper backend.

Putting this file at ``tests/`` also puts ``tests/`` on ``sys.path``, so test modules anywhere can
``import audio_fixtures``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import audio_fixtures
import pytest
from monitoring_stack import processes  # noqa: F401 - the fixture, for every test


@pytest.fixture(scope="session")
def whisper_backend() -> Iterator[Any]:
    """The bundled tiny.en, loaded once per test session (CPU int8 here)."""
    from stt_server.config import ServerConfig
    from stt_server.engine.backend import WhisperBackend

    backend = WhisperBackend(ServerConfig().model)
    backend.load()
    yield backend


@pytest.fixture(scope="session")
def two_sentences() -> tuple[str, str]:
    return audio_fixtures.SENTENCES[0], audio_fixtures.SENTENCES[1]
