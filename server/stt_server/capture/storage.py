"""Archive each session's audio as one WAV file, off the event loop, with lazy retention.

As seed 000 describes: with ``storage.persist_audio`` on, every session's audio (as the server
recognised it: 16 kHz mono 16-bit) goes to ``<directory>/<utc time>_<session_id>.wav``. Chunks are
queued to one background writer thread, so the streaming loop never waits on the disk. Right after
a session's file is closed, retention runs: ``max_age_days``, then ``max_files``, then
``max_bytes`` (oldest files first). ``null`` or a negative limit means no limit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

import numpy as np

from stt_server.config import StorageSettings

log = logging.getLogger(__name__)
SAMPLE_RATE: Final = 16000
_STOP: Final = object()


@dataclass(frozen=True)
class RetentionPolicy:
    """Limits on the capture directory; ``None`` means unlimited."""

    max_bytes: int | None = None
    max_files: int | None = None
    max_age_days: float | None = None

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> RetentionPolicy:
        def limit(value: float | None) -> float | None:
            return None if value is None or value < 0 else value

        max_bytes, max_files = limit(settings.max_bytes), limit(settings.max_files)
        return cls(
            max_bytes=None if max_bytes is None else int(max_bytes),
            max_files=None if max_files is None else int(max_files),
            max_age_days=limit(settings.max_age_days),
        )


def enforce_retention(directory: Path, policy: RetentionPolicy, *, now: float | None = None) -> list[Path]:
    """Delete the WAV files that break ``policy`` (oldest first); returns the deleted paths."""
    now = time.time() if now is None else now
    files = []
    for path in directory.glob("*.wav"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        files.append((stat.st_mtime, path.name, path, stat.st_size))
    files.sort()  # oldest first; name breaks ties so the order is stable
    doomed: list[Path] = []
    if policy.max_age_days is not None:
        cutoff = now - policy.max_age_days * 86400
        doomed += [path for mtime, _, path, _ in files if mtime < cutoff]
        files = [f for f in files if f[2] not in doomed]
    if policy.max_files is not None and len(files) > policy.max_files:
        excess = len(files) - policy.max_files
        doomed += [f[2] for f in files[:excess]]
        files = files[excess:]
    if policy.max_bytes is not None:
        total = sum(f[3] for f in files)
        while files and total > policy.max_bytes:
            _, _, path, size = files.pop(0)
            doomed.append(path)
            total -= size
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


class CaptureWriter:
    """One session's WAV; ``write`` and ``close`` only enqueue, the thread does the I/O."""

    def __init__(self, capture: AudioCapture, path: Path) -> None:
        self.path = path
        self._capture = capture
        self._closed = False

    def write(self, pcm: np.ndarray) -> None:
        """Queue float32 samples in -1..1 (copied, so the caller may reuse its buffer)."""
        if not self._closed:
            self._capture.submit(self, np.array(pcm, dtype=np.float32, copy=True))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._capture.submit(self, None)


class AudioCapture:
    """Owns the writer thread; ``open`` a writer per session, ``stop`` at shutdown."""

    def __init__(self, settings: StorageSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(settings.directory)
        self.policy = RetentionPolicy.from_settings(settings)
        self._clock = clock
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._files: dict[CaptureWriter, wave.Wave_write] = {}
        self._idle = threading.Condition()
        self._pending = 0
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="stt-audio-capture", daemon=True)
        self._thread.start()

    def open(self, session_id: str) -> CaptureWriter:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        return CaptureWriter(self, self.directory / f"{stamp}_{session_id}.wav")

    def submit(self, writer: CaptureWriter, pcm: np.ndarray | None) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put((writer, pcm))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is on disk (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            writer, pcm = cast(tuple[CaptureWriter, np.ndarray | None], item)
            try:
                self._handle(writer, pcm)
            except Exception:  # a disk problem must not kill capture for every later session
                log.exception("audio capture failed for %s", writer.path.name)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def _handle(self, writer: CaptureWriter, pcm: np.ndarray | None) -> None:
        handle = self._files.get(writer)
        if pcm is None:
            if handle is not None:
                handle.close()
                del self._files[writer]
            deleted = enforce_retention(self.directory, self.policy, now=self._clock())
            if deleted:
                log.info("audio capture retention removed %d file(s)", len(deleted))
            return
        if handle is None:
            handle = wave.open(str(writer.path), "wb")  # noqa: SIM115 - stays open across chunks
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(SAMPLE_RATE)
            self._files[writer] = handle
        handle.writeframes((np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2").tobytes())
