"""Recognition results as OpenAI's response formats: json, text, srt, vtt, verbose_json (pure).

Text is the results' texts joined by one space, the same join the gRPC client uses, so a file's
transcript reads the same over both protocols. Timestamps come from the results (Whisper's segments).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from stt_server.engine.types import RecognitionResult

CONTENT_TYPES: Final = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
}


def transcript_text(results: Sequence[RecognitionResult]) -> str:
    return " ".join(r.text.strip() for r in results if r.text.strip())


def _clock(seconds: float, *, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def render_srt(results: Sequence[RecognitionResult]) -> str:
    cues = [f"{index}\n{_clock(r.start_sec, separator=',')} --> {_clock(r.end_sec, separator=',')}\n{r.text.strip()}\n"
            for index, r in enumerate((r for r in results if r.text.strip()), start=1)]
    return "\n".join(cues)


def render_vtt(results: Sequence[RecognitionResult]) -> str:
    cues = [f"{_clock(r.start_sec, separator='.')} --> {_clock(r.end_sec, separator='.')}\n{r.text.strip()}\n"
            for r in results if r.text.strip()]
    return "WEBVTT\n\n" + "\n".join(cues)


def _segment(index: int, result: RecognitionResult) -> dict[str, Any]:
    # our results keep the confidence exp(avg_logprob); OpenAI's segments carry the log itself
    avg_logprob = math.log(result.confidence) if result.confidence > 0 else -math.inf
    return {"id": index, "seek": 0, "start": round(result.start_sec, 3), "end": round(result.end_sec, 3),
            "text": result.text.strip(), "tokens": [], "temperature": 0.0,
            "avg_logprob": round(avg_logprob, 6) if math.isfinite(avg_logprob) else -100.0,
            "compression_ratio": 0.0, "no_speech_prob": 0.0}


def render_verbose(results: Sequence[RecognitionResult], *, duration_sec: float, language: str,
                   words: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "transcribe", "language": language, "duration": round(duration_sec, 3),
        "text": transcript_text(results),
        "segments": [_segment(index, r) for index, r in enumerate(results)],
        "usage": {"type": "duration", "seconds": math.ceil(duration_sec)},
    }
    if words:
        body["words"] = [{"word": w.word, "start": round(w.start_sec, 3), "end": round(w.end_sec, 3)}
                         for r in results for w in r.words]
    return body


def render(results: Sequence[RecognitionResult], *, response_format: str, duration_sec: float, language: str,
           words: bool) -> str | dict[str, Any]:
    """The body for ``response_format``: a dict for the JSON formats, text for the others."""
    if response_format == "json":
        return {"text": transcript_text(results), "usage": {"type": "duration", "seconds": math.ceil(duration_sec)}}
    if response_format == "verbose_json":
        return render_verbose(results, duration_sec=duration_sec, language=language, words=words)
    if response_format == "srt":
        return render_srt(results)
    if response_format == "vtt":
        return render_vtt(results)
    return transcript_text(results) + "\n"


def sse_event(payload: dict[str, Any]) -> bytes:
    """One Server-Sent Event carrying ``payload`` as JSON."""
    import json

    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()
