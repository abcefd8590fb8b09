"""Word timestamps for batched decodes: cross-attention alignment over the batch's encoder output.

Uses faster-whisper's ``find_alignment`` (CTranslate2 ``align``, DTW over alignment heads) with a
per-item frame count, then its punctuation merge, so streaming finals with ``word_time_offsets``
ride in the same batch as everything else instead of a separate 30 s-window decode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

WordTiming = tuple[str, float, float, float]  # word, start sec, end sec, probability
PREPEND_PUNCTUATIONS: Final = "\"'“¿([{-"
APPEND_PUNCTUATIONS: Final = "\"'.。,，!！?？:：”)]}、"


def align_words(model: Any, tokenizer: Any, encoded: Any, tokens: Sequence[list[int]],
                frames: Sequence[int]) -> list[tuple[WordTiming, ...]]:
    """Words with start/end seconds (relative to each item's audio) for every item of the batch.

    ``tokens`` are each item's text tokens (no special tokens), ``frames`` its unpadded mel frames.
    """
    from faster_whisper.transcribe import merge_punctuations

    # CTranslate2 needs at least one token per item; an empty item gets end-of-text and no words.
    safe = [list(t) if t else [tokenizer.eot] for t in tokens]
    alignments = model.find_alignment(tokenizer, safe, encoded, list(frames))
    words: list[tuple[WordTiming, ...]] = []
    for item_tokens, alignment in zip(tokens, alignments):
        if not item_tokens:
            words.append(())
            continue
        merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
        words.append(tuple(
            (w["word"].strip(), round(float(w["start"]), 3), round(float(w["end"]), 3), float(w["probability"]))
            for w in alignment if w["word"].strip()))
    return words
