"""The streaming speech engine: audio -> VAD -> LocalAgreement partials and finals (docs/engine.md)."""

from __future__ import annotations

from stt_server.engine.engine import Engine
from stt_server.engine.errors import (
           AudioFormatError,
           BufferLimitExceeded,
           DecodeQueueFull,
           ModelLoadError,
           StreamClosed,
)
from stt_server.engine.recognizer import StreamRecognizer
from stt_server.engine.types import RecognitionResult, SpeechEvent, StreamOptions, Word

__all__ = ["AudioFormatError", "BufferLimitExceeded", "DecodeQueueFull", "Engine", "ModelLoadError",
           "RecognitionResult", "SpeechEvent", "StreamClosed", "StreamOptions", "StreamRecognizer", "Word"]
