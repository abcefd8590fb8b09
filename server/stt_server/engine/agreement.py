"""LocalAgreement-2 (as in whisper_streaming): promote what two consecutive hypotheses agree on.

Each partial decode of the open utterance yields a word sequence. Words after the already stable
prefix that the previous hypothesis also had, in the same positions, become stable; stable words
never change again within the utterance. The recognizer forces the stable prefix into the next
decode (a decoder prefix), so later hypotheses extend it rather than contradict it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

_PUNCTUATION: Final = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_word(word: str) -> str:
    """Comparison key: lowercase, punctuation removed ("Dog." and "dog" agree)."""
    return _PUNCTUATION.sub("", word.lower())


def split_words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def trim_repetition(words: Sequence[str]) -> tuple[str, ...]:
    """Cut a decoding loop: keep words up to the first phrase that repeats back to back.

    Short-context decodes of tiny models sometimes loop ("we will... we will... we will"); a phrase
    of two or more words repeated immediately, or one word three times in a row, ends the text
    after its first occurrence.
    """
    keys = [normalize_word(w) for w in words]
    for end in range(len(keys)):
        for size in range(1, end // 2 + 2):
            start = end - 2 * size + 1
            if start < 0:
                break
            if keys[start:start + size] == keys[start + size:end + 1] and any(keys[start:start + size]):
                if size > 1:
                    return tuple(words[:start + size])
                if start >= 1 and keys[start - 1] == keys[start]:
                    return tuple(words[:start])
    return tuple(words)


def common_prefix_length(first: Sequence[str], second: Sequence[str]) -> int:
    """How many leading words two sequences share, compared by ``normalize_word``."""
    length = 0
    for a, b in zip(first, second):
        if normalize_word(a) != normalize_word(b):
            break
        length += 1
    return length


@dataclass(frozen=True)
class Agreement:
    stable: tuple[str, ...]
    unstable: tuple[str, ...]

    @property
    def stable_text(self) -> str:
        return " ".join(self.stable)

    @property
    def unstable_text(self) -> str:
        return " ".join(self.unstable)

    @property
    def stability(self) -> float:
        """Fraction of the hypothesis' characters that are stable."""
        stable, unstable = len(self.stable_text), len(self.unstable_text)
        total = stable + unstable + (1 if stable and unstable else 0)
        return stable / total if total else 0.0


class LocalAgreement:
    """Stable prefix of one utterance, grown by LocalAgreement-2 over successive hypotheses."""

    def __init__(self) -> None:
        self._stable: list[str] = []
        self._previous_tail: tuple[str, ...] | None = None

    @property
    def stable(self) -> tuple[str, ...]:
        return tuple(self._stable)

    @property
    def stable_text(self) -> str:
        return " ".join(self._stable)

    def _tail(self, words: Sequence[str]) -> tuple[str, ...]:
        # The words after the stable ones, by position. A decode forced with an older (shorter)
        # stable prefix may spell a later stable word differently ("frown" for "brown"): position,
        # not text, says where its new words start, so nothing is repeated or lost.
        return tuple(words[len(self._stable):])

    def update(self, words: Sequence[str]) -> Agreement:
        """Feed one partial hypothesis (the whole utterance's words); return stable and unstable."""
        tail = self._tail(words)
        if self._previous_tail is not None:
            agreed = common_prefix_length(self._previous_tail, tail)
            self._stable.extend(tail[:agreed])
            tail = tail[agreed:]
        self._previous_tail = tail
        return Agreement(stable=self.stable, unstable=tail)

    def finalize(self, words: Sequence[str]) -> Agreement:
        """The final hypothesis: the stable words, then everything the final decode adds after them."""
        tail = self._tail(words)
        self._stable.extend(tail)
        self._previous_tail = None
        return Agreement(stable=self.stable, unstable=())
