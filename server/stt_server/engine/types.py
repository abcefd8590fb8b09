"""The engine's public records: stream options in, results and speech events out.

Small frozen dataclasses shared by the recognizer, the gRPC servicer, the bench and the tests
(docs/design/contracts.md, "Engine interface").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

SAMPLE_RATE: Final = 16_000
SPEECH_EVENT_KINDS: Final = ("speech_begin", "speech_end", "end_of_single_utterance")

SpeechEventKind = Literal["speech_begin", "speech_end", "end_of_single_utterance"]


@dataclass(frozen=True)
class StreamOptions:
    """Per-stream recognition options; ``None`` endpointing values fall back to the server config."""

    language: str | None = "en"  # None -> auto-detect
    interim_results: bool = True
    single_utterance: bool = False
    word_time_offsets: bool = False
    speech_start_ms: int | None = None
    end_silence_ms: int | None = None
    max_utterance_sec: float | None = None


@dataclass(frozen=True)
class Word:
    """One recognised word with its offsets in the stream's audio time."""

    word: str
    start_sec: float
    end_sec: float
    probability: float


@dataclass(frozen=True)
class RecognitionResult:
    """A partial or final hypothesis for one utterance."""

    is_final: bool
    stable_text: str  # promoted by LocalAgreement-2 (never changes later in the utterance)
    unstable_text: str  # tail that may still change
    start_sec: float  # offsets in the stream's audio time
    end_sec: float
    audio_processed_sec: float
    utterance_index: int
    confidence: float = 0.0  # finals only
    words: tuple[Word, ...] = ()
    language: str = ""
    stability: float = 0.0  # fraction of text that is stable

    @property
    def text(self) -> str:
        """The whole hypothesis: stable prefix plus unstable tail."""
        return join_text(self.stable_text, self.unstable_text)


@dataclass(frozen=True)
class SpeechEvent:
    """Speech begin / end (from the VAD) and end of single utterance."""

    kind: SpeechEventKind
    offset_sec: float


def join_text(stable: str, unstable: str) -> str:
    """Concatenate a stable prefix and an unstable tail with one space between them."""
    if stable and unstable:
        return f"{stable} {unstable}"
    return stable or unstable
