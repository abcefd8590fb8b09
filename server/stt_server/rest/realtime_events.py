"""Engine output as OpenAI realtime transcription events (pure).

One ``RealtimeTranscript`` per connection: speech events become ``input_audio_buffer.speech_started``
/ ``speech_stopped`` / ``committed``; partials become ``conversation.item.input_audio_transcription.delta``
events carrying only the text that LocalAgreement made stable since the last delta (OpenAI's deltas
only ever append); a final sends what is left and then ``...completed`` with the whole transcript.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stt_server.engine.types import RecognitionResult, SpeechEvent


def _suffix(sent: str, text: str) -> str:
    """What ``text`` adds to ``sent`` (the whole text when it no longer extends it)."""
    if not sent:
        return text
    if text.startswith(sent):
        return text[len(sent):]
    return ""


@dataclass
class RealtimeTranscript:
    """Per-connection translation state: item ids and the text already sent for each."""

    prefix: str = "item"
    _base: int = 0  # utterances of earlier recognizers on this connection
    _next: int = 0  # the utterance index the next speech start opens
    _sent: dict[int, str] = field(default_factory=dict)
    _previous: str | None = None

    def item_id(self, utterance: int) -> str:
        return f"{self.prefix}_{self._base + utterance:04d}"

    def next_stream(self) -> None:
        """A commit ends one recognizer and starts another, which counts utterances from 0 again."""
        self._base += self._next
        self._next = 0
        self._sent.clear()

    def events(self, item: RecognitionResult | SpeechEvent) -> list[dict[str, Any]]:
        """The client events for one engine item, in the order the engine produced them."""
        if isinstance(item, SpeechEvent):
            # speech events carry no utterance index: they open (begin) or close (end) the next one
            utterance = self._next if item.kind == "speech_begin" else max(0, self._next - 1)
            if item.kind == "speech_begin":
                self._next += 1
            item_id = self.item_id(utterance)
            ms = round(item.offset_sec * 1000)
            if item.kind == "speech_begin":
                return [{"type": "input_audio_buffer.speech_started", "audio_start_ms": ms, "item_id": item_id}]
            if item.kind == "speech_end":
                committed = {"type": "input_audio_buffer.committed", "item_id": item_id,
                             "previous_item_id": self._previous}
                self._previous = item_id
                return [{"type": "input_audio_buffer.speech_stopped", "audio_end_ms": ms, "item_id": item_id},
                        committed]
            return []
        self._next = max(self._next, item.utterance_index + 1)  # a length cut opens one without an event
        item_id = self.item_id(item.utterance_index)
        sent = self._sent.get(item.utterance_index, "")
        out: list[dict[str, Any]] = []
        text = item.stable_text if not item.is_final else item.text
        delta = _suffix(sent, text)
        if delta:
            out.append({"type": "conversation.item.input_audio_transcription.delta", "item_id": item_id,
                        "content_index": 0, "delta": delta})
            self._sent[item.utterance_index] = sent + delta
        if item.is_final:
            out.append({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                        "content_index": 0, "transcript": item.text})
            self._sent.pop(item.utterance_index, None)
        return out
