"""choose_batch / padded_frames: which queued decodes share a model call (pure)."""

from __future__ import annotations

from stt_server.engine.backend import FINAL_MARGIN_FRAMES, MAX_FRAMES, PARTIAL_MARGIN_FRAMES
from stt_server.engine.batching import choose_batch, padded_frames


def test_padded_frames_are_audio_plus_the_kind_of_tail_capped_at_the_window() -> None:
    assert padded_frames(samples=16_000, final=False) == 100 + PARTIAL_MARGIN_FRAMES
    assert padded_frames(samples=16_000, final=True) == 100 + FINAL_MARGIN_FRAMES
    assert padded_frames(samples=16_001, final=False) == 101 + PARTIAL_MARGIN_FRAMES  # a started frame counts
    assert padded_frames(samples=40 * 16_000, final=True) == MAX_FRAMES


def test_jobs_nearest_the_heads_width_fill_the_batch_up_to_the_limit() -> None:
    assert choose_batch([400, 420, 390, 410, 400], limit=3) == [0, 2, 4]  # 400, then 400 and 390
    assert choose_batch([400, 700, 650, 420, 380], limit=3) == [0, 3, 4]  # the 1 s partials, not the 4 s ones


def test_a_higher_priority_class_is_taken_before_a_nearer_width() -> None:
    # Head: a final (rank 0); a first partial (rank 1) goes before a refresh (rank 2) of equal width.
    assert choose_batch([600, 500, 500], ranks=[0, 2, 1], limit=2) == [0, 2]


def test_the_head_always_goes_even_alone_and_over_budget() -> None:
    assert choose_batch([3000, 400], limit=8, frame_budget=2000) == [0]
    assert choose_batch([], limit=8) == []


def test_a_long_job_is_left_for_the_next_call_and_shorter_ones_behind_it_still_join() -> None:
    # Head: a 1 s partial (400 frames); a 10 s final (1500) would make padding 73% of the batch.
    assert choose_batch([400, 1500, 420, 380], limit=8) == [0, 2, 3]


def test_the_frame_budget_caps_items_times_the_widest() -> None:
    widths = [900] * 8  # finals of 4 s with their 5 s tails
    assert choose_batch(widths, limit=8, frame_budget=4800) == [0, 1, 2, 3, 4]  # 5 x 900 <= 4800 < 6 x 900
    assert len(choose_batch([400] * 12, limit=12, frame_budget=4800)) == 12


def test_waste_allows_some_mixing() -> None:
    # A final head (900) with partials of 600: padding stays under 30%, so they ride along.
    assert choose_batch([900, 600, 600], limit=8) == [0, 1, 2]
    assert choose_batch([900, 600, 600], limit=8, max_waste=0.1) == [0]
