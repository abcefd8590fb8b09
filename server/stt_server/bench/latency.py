"""Client-side latencies on the audio clock: which result belongs to which planned utterance (pure).

The bench knows where speech starts and ends in the audio it sends (``Utterance``) and when each
chunk left (``SendLog``). Latency is the wall time a result arrived minus the wall time the
relevant sample was sent: for the first partial, the utterance's first speech sample; for the
final, its last one. Results are matched to utterances by their audio offsets, so an utterance the
server split in two still gets one first-partial and one final figure (its last final).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

# Server VAD pads utterances a little; a result up to this far outside a planned utterance still
# belongs to it.
MATCH_TOLERANCE_SEC: Final = 0.5


@dataclass(frozen=True)
class Utterance:
    """Planned speech in the stream's audio (seconds from the first audio sample)."""

    index: int
    start_sec: float
    end_sec: float
    text: str = ""


@dataclass(frozen=True)
class Received:
    """One result as the client saw it."""

    wall_sec: float
    is_final: bool
    start_sec: float
    end_sec: float
    text: str = ""


@dataclass
class SendLog:
    """``(audio_end_sec, wall_sec)`` per chunk sent, in order."""

    audio_end: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    def record(self, *, audio_end_sec: float, wall_sec: float) -> None:
        self.audio_end.append(audio_end_sec)
        self.wall.append(wall_sec)

    def sent_at(self, audio_sec: float) -> float | None:
        """Wall time the chunk holding ``audio_sec`` left; ``None`` if it never did."""
        index = bisect.bisect_left(self.audio_end, audio_sec)
        return self.wall[index] if index < len(self.wall) else None


@dataclass(frozen=True)
class UtteranceLatency:
    utterance: Utterance
    first_partial_sec: float | None  # first result of either kind: when the user first sees text
    final_sec: float | None          # the utterance's last final
    final_text: str


def _overlap(result: Received, utterance: Utterance) -> float:
    low = max(result.start_sec, utterance.start_sec - MATCH_TOLERANCE_SEC)
    high = min(max(result.end_sec, result.start_sec), utterance.end_sec + MATCH_TOLERANCE_SEC)
    return high - low


def assign(result: Received, plan: Sequence[Utterance]) -> Utterance | None:
    """The planned utterance a result covers most (``None`` for results in pure silence)."""
    best, best_overlap = None, 0.0
    for utterance in plan:
        overlap = _overlap(result, utterance)
        # A zero-length result (start == end) inside the window still counts.
        if overlap >= 0.0 and (best is None or overlap > best_overlap):
            best, best_overlap = utterance, overlap
    return best


def match_utterances(
    plan: Sequence[Utterance], received: Sequence[Received], *, sends: SendLog
) -> list[UtteranceLatency]:
    """One latency record per planned utterance whose audio was sent."""
    by_utterance: dict[int, list[Received]] = {u.index: [] for u in plan}
    for result in received:
        utterance = assign(result, plan)
        if utterance is not None:
            by_utterance[utterance.index].append(result)
    out = []
    for utterance in plan:
        start_sent, end_sent = sends.sent_at(utterance.start_sec), sends.sent_at(utterance.end_sec)
        if start_sent is None or end_sent is None:
            continue  # the stream stopped before this utterance was fully sent
        results = by_utterance[utterance.index]
        finals = [r for r in results if r.is_final]
        first = min((r.wall_sec for r in results), default=None)
        last_final = max(finals, key=lambda r: r.wall_sec, default=None)
        out.append(UtteranceLatency(
            utterance=utterance,
            first_partial_sec=None if first is None else first - start_sent,
            final_sec=None if last_final is None else last_final.wall_sec - end_sent,
            final_text=" ".join(r.text.strip() for r in sorted(finals, key=lambda r: r.start_sec)).strip(),
        ))
    return out
