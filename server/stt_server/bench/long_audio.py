"""A long recording for ``stt-bench offline --long``: synthesized sentences with pauses, built at run time.

The script is read in order and repeated until the recording reaches the wanted length; pauses
between sentences vary (seeded), as in a meeting. The reference text is the script as read, so a
word error rate needs no hand transcription. Nothing is committed: the audio is made when the
benchmark runs (hibari-tts voice ``heart``, see ``workload.synthesize``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from stt_server.bench.workload import SAMPLE_RATE, synthesize

SCRIPT: Final = (
    "Good morning everyone, thanks for joining the weekly planning call.",
    "Let's start with a quick review of what shipped last week.",
    "The new billing page went live on Tuesday without any problems.",
    "Support tickets about invoices dropped by almost half since then.",
    "The mobile team is still waiting on the design for the settings screen.",
    "We expect the final mockups by the end of this week.",
    "On the infrastructure side, the database upgrade is scheduled for Saturday night.",
    "There will be a short maintenance window of about twenty minutes.",
    "Please let your customers know in advance if they work on weekends.",
    "Next, the hiring update.",
    "We interviewed four candidates for the backend position.",
    "Two of them are moving on to the final round next Monday.",
    "Marketing asked whether we can present a demo at the conference in May.",
    "I think the streaming transcription feature would make a good story.",
    "We need someone to prepare the slides and rehearse the talk.",
    "The budget for travel has been approved for three people.",
    "Another topic is the onboarding guide for new engineers.",
    "Several people said the setup instructions are out of date.",
    "Could someone volunteer to walk through them on a fresh laptop?",
    "It would help to record the steps while doing it.",
    "The security review found two minor issues in the login flow.",
    "Both are fixed already and the patches are waiting for approval.",
    "Our on call rotation changes at the start of next month.",
    "Check the calendar and swap shifts early if you have a conflict.",
    "The customer survey results arrived yesterday afternoon.",
    "Most people like the product but want faster search.",
    "The search team will share a plan for that in two weeks.",
    "Finally, remember that the office is closed on Friday for the holiday.",
    "If there are no other questions, we can end the call here.",
    "Thank you all, and have a productive week.",
)
MIN_PAUSE_SEC: Final = 0.6
MAX_PAUSE_SEC: Final = 4.0


@dataclass(frozen=True)
class LongRecording:
    """16 kHz mono float32 samples and the text read in them (the WER reference)."""

    samples: np.ndarray
    reference: str

    @property
    def duration_sec(self) -> float:
        return self.samples.size / SAMPLE_RATE


def compose_long(clips: Sequence[np.ndarray], texts: Sequence[str], *, duration_sec: float,
                 seed: int = 0) -> LongRecording:
    """Read ``clips`` in order (repeating) with seeded pauses until ``duration_sec`` is reached (pure)."""
    if not clips or len(clips) != len(texts):
        raise ValueError("compose_long needs one text per clip, and at least one clip")
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = [np.zeros(SAMPLE_RATE // 2, dtype=np.float32)]
    read: list[str] = []
    length = parts[0].size
    index = 0
    while length < duration_sec * SAMPLE_RATE:
        clip = clips[index % len(clips)]
        pause = np.zeros(round(rng.uniform(MIN_PAUSE_SEC, MAX_PAUSE_SEC) * SAMPLE_RATE), dtype=np.float32)
        parts.extend((clip.astype(np.float32, copy=False), pause))
        read.append(texts[index % len(texts)])
        length += clip.size + pause.size
        index += 1
    return LongRecording(np.concatenate(parts), " ".join(read))


def long_recording(duration_sec: float, *, seed: int = 0,
                   speak: Callable[[Sequence[str]], list[np.ndarray]] = synthesize) -> LongRecording:
    """``duration_sec`` (or a little more) of the script read with pauses."""
    return compose_long(speak(SCRIPT), SCRIPT, duration_sec=duration_sec, seed=seed)
