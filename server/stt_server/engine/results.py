"""Pure builders from decoded transcripts and agreement state to ``RecognitionResult``s."""

from __future__ import annotations

import math

from stt_server.engine.agreement import Agreement
from stt_server.engine.backend import Transcript
from stt_server.engine.types import RecognitionResult, Word


def confidence_from_logprob(avg_logprob: float) -> float:
    """Per-token probability implied by the average log-probability, clamped to [0, 1]."""
    return min(1.0, max(0.0, math.exp(avg_logprob)))


def build_partial(agreement: Agreement, *, start_sec: float, end_sec: float, audio_processed_sec: float,
                  utterance_index: int, language: str) -> RecognitionResult:
    return RecognitionResult(
        is_final=False, stable_text=agreement.stable_text, unstable_text=agreement.unstable_text,
        start_sec=start_sec, end_sec=end_sec, audio_processed_sec=audio_processed_sec,
        utterance_index=utterance_index, language=language, stability=agreement.stability)


def build_final(agreement: Agreement, transcript: Transcript, *, start_sec: float, end_sec: float,
                audio_processed_sec: float, utterance_index: int, with_words: bool) -> RecognitionResult:
    words: tuple[Word, ...] = ()
    if with_words:
        # Transcript times are relative to the utterance audio; results use stream time. The text
        # is the stable text's, word by word, so words and transcript never disagree (a trimmed
        # loop or an older forced prefix can make the decode's own words differ).
        words = tuple(Word(text, round(start_sec + w.start_sec, 3), round(start_sec + w.end_sec, 3), w.probability)
                      for text, w in zip(agreement.stable, transcript.words))
    return RecognitionResult(
        is_final=True, stable_text=agreement.stable_text, unstable_text="", start_sec=start_sec,
        end_sec=end_sec, audio_processed_sec=audio_processed_sec, utterance_index=utterance_index,
        confidence=confidence_from_logprob(transcript.avg_logprob), words=words, language=transcript.language,
        stability=1.0)

