"""Which queued decodes share one model call: a cost-aware batch choice (pure).

``transcribe_batch`` pads every item's features to the widest item of the batch (its audio plus
its tail of zero frames), and on CPU the encoder's time grows with ``items x width``: one 4 s final
(900 frames with its 5 s tail) in a batch of short partials (about 400 frames each) more than
doubles what those partials cost. So a batch takes the queue's head (it is the most urgent job and
always goes), then, by priority class and, within a class, nearest in width to the head first,
each further job that keeps the padded size within ``frame_budget`` and the share of padding
within ``max_waste``; jobs that do not fit stay queued, in their place, for the next call. Short
partials therefore batch widely and long finals narrowly (an adaptive batch size), and nothing is
starved: whatever is at the head runs next.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from stt_server.engine.backend import FINAL_MARGIN_FRAMES, MAX_FRAMES, PARTIAL_MARGIN_FRAMES

SAMPLES_PER_FRAME: Final = 160  # Whisper's 10 ms hop at 16 kHz
# 48 s of padded audio per model call: 8 partials of 2 s (with their 3 s tails) or 5 finals of 4 s.
# Measured with tiny.en int8 on 2 cores, the encoder's cost per padded frame stays flat up to
# about this size and grows past it.
DEFAULT_FRAME_BUDGET: Final = 4800
DEFAULT_MAX_WASTE: Final = 0.3


def padded_frames(*, samples: int, final: bool) -> int:
    """Feature frames one item occupies in ``transcribe_batch``: its audio plus its zero tail."""
    margin = FINAL_MARGIN_FRAMES if final else PARTIAL_MARGIN_FRAMES
    return min(MAX_FRAMES, math.ceil(samples / SAMPLES_PER_FRAME) + margin)


def choose_batch(widths: Sequence[int], *, limit: int, ranks: Sequence[int] = (),
                 frame_budget: int = DEFAULT_FRAME_BUDGET, max_waste: float = DEFAULT_MAX_WASTE) -> list[int]:
    """Indices (ascending) of the queued jobs to decode together, ``widths`` in priority order.

    The head always goes. The others are tried by ``ranks`` (priority class, e.g. finals 0, first
    partials 1, refreshes 2; all equal when empty), then by how close their width is to the
    head's, and one joins when the batch stays within ``limit`` items, within ``frame_budget``
    padded frames (items x widest) and within ``max_waste`` padding share.
    """
    if not widths or limit < 1:
        return []
    rank = list(ranks) if ranks else [0] * len(widths)
    chosen = [0]
    widest, total = widths[0], widths[0]
    order = sorted(range(1, len(widths)), key=lambda i: (rank[i], abs(widths[i] - widths[0]), i))
    for index in order:
        if len(chosen) >= limit:
            break
        width = max(widest, widths[index])
        padded = width * (len(chosen) + 1)
        if padded > frame_budget or 1.0 - (total + widths[index]) / padded > max_waste:
            continue
        chosen.append(index)
        widest, total = width, total + widths[index]
    return sorted(chosen)
