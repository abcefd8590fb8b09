"""LocalAgreement-2: table tests over hypothesis sequences."""

from __future__ import annotations

import itertools

import pytest
from stt_server.engine.agreement import LocalAgreement, common_prefix_length, normalize_word, trim_repetition


@pytest.mark.parametrize(("hypotheses", "stable", "unstable"), [
    (["the quick"], "", "the quick"),
    (["the quick", "the quick brown"], "the quick", "brown"),
    (["the quick", "the quack brown"], "the", "quack brown"),
    (["the quick brown", "the quick brown fox", "the quick brown fox jumps"], "the quick brown fox", "jumps"),
    (["a b c", "x y z"], "", "x y z"),
    (["a b c", "x y z", "x y w"], "x y", "w"),
    (["The quick", "the quick, brown"], "the quick,", "brown"),  # punctuation/case do not block agreement
    (["", "hello"], "", "hello"),
])
def test_stable_prefix_after_hypotheses(hypotheses: list[str], stable: str, unstable: str) -> None:
    agreement = LocalAgreement()
    state = None
    for text in hypotheses:
        state = agreement.update(text.split())
    assert state is not None
    assert (state.stable_text, state.unstable_text) == (stable, unstable)


def test_stable_words_never_change_even_if_a_later_hypothesis_disagrees() -> None:
    agreement = LocalAgreement()
    agreement.update(["we", "will", "meet"])
    agreement.update(["we", "will", "meet", "at"])
    state = agreement.update(["we", "won't", "meet", "at", "the"])  # a backend that ignored the prefix
    assert state.stable[:3] == ("we", "will", "meet")
    history = [state.stable]
    for text in ["we will meet at the library", "we will meet at the library at", "totally different"]:
        history.append(agreement.update(text.split()).stable)
    for earlier, later in itertools.pairwise(history):
        assert later[: len(earlier)] == earlier


def test_a_final_decoded_with_an_older_prefix_is_aligned_by_position() -> None:
    agreement = LocalAgreement()
    for text in ["the quick", "the quick brown", "the quick brown fox"]:
        agreement.update(text.split())
    assert agreement.stable_text == "the quick brown"
    # The final was submitted when only "the quick" was stable and heard "frown".
    state = agreement.finalize(["the", "quick", "frown", "fox", "jumps"])
    assert state.stable_text == "the quick brown fox jumps"


def test_finalize_keeps_stable_and_adds_the_rest() -> None:
    agreement = LocalAgreement()
    agreement.update(["please", "call"])
    agreement.update(["please", "call", "stella"])
    state = agreement.finalize(["please", "call", "stella", "and", "ask", "her."])
    assert state.stable_text == "please call stella and ask her."
    assert state.unstable == ()
    assert state.stability == 1.0


def test_stability_is_the_stable_share_of_characters() -> None:
    agreement = LocalAgreement()
    agreement.update(["ab", "cd"])
    state = agreement.update(["ab", "cd", "ef"])
    assert state.stability == pytest.approx(5 / 8)


def test_helpers() -> None:
    assert normalize_word("Dog.") == normalize_word("dog") == "dog"
    assert common_prefix_length(["a", "b", "c"], ["a", "B", "d"]) == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("the qu... the qu... the qu... the qu", "the qu..."),
    ("Please Please Please Please", "Please"),
    ("We will meet. We will meet. We will meet.", "We will meet."),
    ("very very good", "very very good"),
    ("The quick brown fox", "The quick brown fox"),
    ("go F F F F F", "go F"),
])
def test_trim_repetition(text: str, expected: str) -> None:
    assert " ".join(trim_repetition(text.split())) == expected
