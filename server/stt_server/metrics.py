"""All of the server's Prometheus metrics, in one place, on an injected registry.

Names keep seed 002's dashboard and alert vocabulary (``stt_active_sessions``,
``stt_decode_pending``, ``stt_partial_drop_count``, ...) so its queries work unchanged, and add
real histograms where the seed had to fall back to logs (decode phases, CreateSession, first
partial, final latency). Label values always come from small fixed sets: error codes from the
catalogue, gRPC status names, decode kinds, phases. Never session ids or API keys.

Engine and servicer code call the small ``record_*`` methods below; the control plane exposes
``registry`` on ``/metrics`` and ``snapshot()`` on ``/metrics.json``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, Summary
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from stt_server.metrics_compat import SeedCompatCollector
from stt_server.metrics_process import CertExpiryCollector, ThreadsCollector, WindowedMax

# Buckets sized for streaming speech: sub-100 ms decodes up to the 5 s final-latency SLO and past it.
LATENCY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0)
FAST_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 1.0, 2.5)
RTF_BUCKETS: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)

DECODE_PHASES: Final = ("buffer_wait", "queue_wait", "inference", "response_emit", "total")
DECODE_KINDS: Final = ("partial", "final", "offline")
RATE_LIMIT_KINDS: Final = ("sessions_per_key", "requests_per_key", "stream_buffer", "total_buffer", "decode_queue")
SPEECH_EVENTS: Final = ("speech_begin", "speech_end", "end_of_single_utterance")
# CreateSession refusals that are admission decisions (limits, rate, lifecycle): declared at 0 so
# dashboards and alerts see the series before the first refusal. Other catalogue codes appear when used.
ADMISSION_REFUSAL_CODES: Final = ("ERR1011", "ERR1012", "ERR1013", "ERR1020", "ERR1021")
# stt_decode_latency_max and stt_rtf_max: the largest value in this many recent seconds, not since start.
MAX_WINDOW_SEC: Final = 60.0


def hashed_stream_key(session_id: str) -> str:
    """A short, stable, non-reversible key for per-stream gauges (never the raw session id)."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class DecodeTiming:
    """Seconds spent in each phase of one decode (seed 000's decode timing breakdown)."""

    buffer_wait: float
    queue_wait: float
    inference: float
    response_emit: float

    @property
    def total(self) -> float:
        return self.buffer_wait + self.queue_wait + self.inference + self.response_emit


class _SeedCounters(Collector):
    """Counters under seed 002's exact, flattened names (``stt_partial_drop_count``,
    ``stt_rate_limit_blocks_<limit>``, ``stt_error_counts_<status>``, ...).

    prometheus_client appends ``_total`` to every counter sample and writes the ``# TYPE`` line for
    ``<name>_total``; the seed's dashboards and alerts query the bare names, so these are emitted by
    hand and typed ``unknown`` (``untyped`` in the text format): every sample then sits under a
    matching ``# HELP`` / ``# TYPE`` pair, and PromQL treats them as the monotonic series they are.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}

    def inc(self, name: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0.0) + amount

    def declare(self, name: str) -> None:
        with self._lock:
            self._values.setdefault(name, 0.0)

    def values(self) -> dict[str, float]:
        with self._lock:
            return dict(self._values)

    def collect(self) -> list[Metric]:
        families = []
        for name, value in sorted(self.values().items()):
            family = Metric(name, f"{name} (seed 002 name, monotonic)", "unknown")
            family.add_sample(name, {}, value)
            families.append(family)
        return families


class _StreamBufferGauges(Collector):
    """``stt_stream_buffer_bytes_<hash>``: seed 002's per-stream buffer gauges, one per open stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def set(self, key: str, nbytes: int) -> None:
        with self._lock:
            if nbytes < 0:
                self._values.pop(key, None)
            else:
                self._values[key] = nbytes

    def values(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def collect(self) -> list[Metric]:
        families = []
        for key, value in sorted(self.values().items()):
            name = f"stt_stream_buffer_bytes_{key}"
            family = Metric(name, "Audio bytes buffered by one stream (hashed key)", "gauge")
            family.add_sample(name, {}, float(value))
            families.append(family)
        return families


class ServerMetrics:
    """Every metric the server exports, registered on ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._stream_buffers: dict[str, int] = {}
        self._decode_latency_window = WindowedMax(window_sec=MAX_WINDOW_SEC, clock=clock)
        self._rtf_window = WindowedMax(window_sec=MAX_WINDOW_SEC, clock=clock)

        # Traffic
        self.active_sessions = Gauge("stt_active_sessions", "Sessions currently open", registry=r)
        self.active_streams = Gauge("stt_active_streams", "StreamingRecognize calls in progress", registry=r)
        self.sessions_created = Counter("stt_sessions_created", "CreateSession calls that succeeded", registry=r)
        self.streams_started = Counter("stt_streams_started", "StreamingRecognize calls started", registry=r)
        self.recognize_requests = Counter("stt_recognize_requests", "Unary Recognize calls", registry=r)
        self.api_key_sessions = Gauge(
            "stt_api_key_sessions", "Open sessions per API key (hashed key id)", ["key_id"], registry=r
        )

        # Performance: seed 002 names (sums, counts and maxima) ...
        self.seed = _SeedCounters()
        for name in ("stt_decode_latency_total", "stt_decode_latency_count", "stt_rtf_total", "stt_rtf_count",
                     "stt_partial_drop_count", "stt_decode_orphaned", "stt_decode_cancelled"):
            self.seed.declare(name)
        for limit in RATE_LIMIT_KINDS:
            self.seed.declare(f"stt_rate_limit_blocks_{limit}")
        r.register(self.seed)
        self.decode_latency_max = Gauge(
            "stt_decode_latency_max", f"Largest total decode seconds in the last {MAX_WINDOW_SEC:g}s", registry=r)
        self.decode_latency_max.set_function(self._decode_latency_window.value)
        self.rtf_max = Gauge("stt_rtf_max", f"Largest per-decode real-time factor in the last {MAX_WINDOW_SEC:g}s",
                             registry=r)
        self.rtf_max.set_function(self._rtf_window.value)
        # ... and real histograms, so P50/P95/P99 come from PromQL.
        self.decode_phase_seconds = Histogram(
            "stt_decode_phase_seconds",
            "Seconds per decode phase (buffer_wait, queue_wait, inference, response_emit, total)",
            ["phase", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decode_rtf = Histogram(
            "stt_decode_rtf", "Inference seconds per second of audio", ["kind"], buckets=RTF_BUCKETS, registry=r
        )
        self.decode_batch_size = Histogram(
            "stt_decode_batch_size", "Streams decoded together in one model call",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16), registry=r,
        )
        self.create_session_seconds = Histogram(
            "stt_create_session_seconds", "CreateSession handling time", buckets=FAST_BUCKETS, registry=r
        )
        self.first_partial_seconds = Histogram(
            "stt_first_partial_latency_seconds",
            "Speech start (audio time) to first partial sent (wall time, audio-clock aligned)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.final_seconds = Histogram(
            "stt_final_latency_seconds",
            "Utterance end (audio time) to its final result sent (wall time, audio-clock aligned)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        # Quality / shedding (partial drops, orphans and cancels are seed counters above)
        self.results = Counter("stt_results", "Results sent to clients", ["kind"], registry=r)
        self.vad_triggers = Counter("stt_vad_triggers", "VAD speech events", ["event"], registry=r)
        self.vad_active_utterances = Gauge("stt_vad_active_utterances", "Utterances currently open", registry=r)

        # Resources / limits
        self.decode_pending = Gauge("stt_decode_pending", "Decodes queued or running", registry=r)
        self.decode_pending_cap = Gauge("stt_decode_pending_cap", "Configured decode queue cap", registry=r)
        self.buffer_bytes_total = Gauge("stt_buffer_bytes_total", "Audio bytes buffered across streams", registry=r)
        self.max_total_buffer_bytes = Gauge(
            "stt_max_total_buffer_bytes", "Configured global buffer cap (max_total_buffer_bytes)", registry=r
        )
        self.max_sessions = Gauge("stt_max_sessions", "Configured max_sessions", registry=r)
        self.stream_buffers_collector = _StreamBufferGauges()
        r.register(self.stream_buffers_collector)
        self.rate_limit_blocks = Counter(
            "stt_rate_limit_blocks", "Requests refused by a limit", ["limit"], registry=r
        )
        for limit in RATE_LIMIT_KINDS:  # at 0 from the start: a first burst of blocks is a visible increase
            self.rate_limit_blocks.labels(limit=limit)
        self.session_limit_rejects = Counter(
            "stt_session_limit_rejects", "Sessions refused by max_sessions (ERR1011)", registry=r
        )
        self.create_session_refusals = Counter(
            "stt_create_session_refusals", "CreateSession calls refused, by catalogue code", ["code"], registry=r
        )
        for code in ADMISSION_REFUSAL_CODES:
            self.create_session_refusals.labels(code=code)
        self.errors = Counter(
            "stt_errors", "Errors returned, by catalogue code and gRPC status", ["code", "grpc_status"],
            registry=r,
        )
        # protocol: "grpc", or "rest" for the OpenAI-compatible HTTP API (its calls keep the gRPC status
        # names of their catalogue codes, so error-ratio rules cover both protocols unchanged)
        self.grpc_requests = Counter(
            "stt_grpc_requests", "Recognition API calls finished, by method, status and protocol",
            ["method", "grpc_status", "protocol"], registry=r
        )

        # State
        self.model_loaded = Gauge("stt_model_loaded", "1 when the Whisper model is loaded", registry=r)
        self.ready = Gauge("stt_ready", "1 when accepting new sessions (not loading, not draining)", registry=r)
        self.draining = Gauge("stt_draining", "1 while draining for shutdown", registry=r)

        # The process itself (RSS, CPU seconds, open fds, threads) and the serving certificate
        ProcessCollector(registry=r)
        r.register(ThreadsCollector())
        self.tls_cert = CertExpiryCollector()
        r.register(self.tls_cert)

        # Figures seeds 003 and 004 name, measured under their names; the rest of their names are
        # derived from the metrics above by SeedCompatCollector (metrics_compat.py).
        self.grpc_request_seconds = Histogram(
            "grpc_request_duration_seconds",
            "Seconds per recognition API call (a stream: its whole life), by protocol (grpc, rest)",
            ["service", "method", "protocol"], buckets=(*FAST_BUCKETS, 5.0, 10.0, 30.0, 60.0, 300.0), registry=r,
        )
        self.audio_load_seconds = Histogram(
            "whisper_audio_load_duration_seconds", "Seconds decoding and resampling request audio",
            ["kind"], buckets=FAST_BUCKETS, registry=r,
        )
        self.audio_chunks = Counter("audio_chunks_processed", "Audio messages received on streams", registry=r)
        self.http_requests = Counter(
            "http_requests", "Control-plane HTTP requests", ["endpoint", "method", "status"], registry=r
        )
        self.http_request_seconds = Histogram(
            "http_request_duration_seconds", "Control-plane HTTP request seconds", ["endpoint", "method"],
            buckets=FAST_BUCKETS, registry=r,
        )
        self.http_in_progress = Gauge("http_requests_in_progress", "Control-plane HTTP requests in progress",
                                      registry=r)
        self.http_request_size = Summary("http_request_size_bytes", "Control-plane request body bytes",
                                         ["endpoint"], registry=r)
        self.http_response_size = Summary("http_response_size_bytes", "Control-plane response body bytes",
                                          ["endpoint"], registry=r)
        r.register(SeedCompatCollector(self))

    # --- recording helpers called from the engine and the servicer -------------------------------

    def record_decode(self, *, kind: str, timing: DecodeTiming, audio_seconds: float, batch_size: int = 1) -> None:
        """One finished decode: phase histograms, seed-002 sums/max, RTF."""
        for phase in DECODE_PHASES:
            self.decode_phase_seconds.labels(phase=phase, kind=kind).observe(getattr(timing, phase))
        total = timing.total
        self.seed.inc("stt_decode_latency_total", total)
        self.seed.inc("stt_decode_latency_count")
        self.decode_batch_size.observe(batch_size)
        self._decode_latency_window.observe(total)
        if audio_seconds > 0:
            rtf = timing.inference / audio_seconds
            self.seed.inc("stt_rtf_total", rtf)
            self.seed.inc("stt_rtf_count")
            self.decode_rtf.labels(kind=kind).observe(rtf)
            self._rtf_window.observe(rtf)

    def record_partial_dropped(self) -> None:
        self.seed.inc("stt_partial_drop_count")

    def record_decode_orphaned(self) -> None:
        self.seed.inc("stt_decode_orphaned")

    def record_decode_cancelled(self, count: int = 1) -> None:
        self.seed.inc("stt_decode_cancelled", count)

    def record_error(self, *, code: str, grpc_status: str) -> None:
        """An error sent to a client: ``code`` from the catalogue, ``grpc_status`` like ``RESOURCE_EXHAUSTED``."""
        self.errors.labels(code=code, grpc_status=grpc_status).inc()
        self.seed.inc(f"stt_error_counts_{grpc_status.lower()}")

    def record_create_session_refused(self, code: str) -> None:
        """A CreateSession call refused with catalogue ``code`` (the error itself is counted by ``record_error``)."""
        self.create_session_refusals.labels(code=code).inc()

    def record_rate_limit_block(self, limit: str) -> None:
        """A request refused by ``limit``, one of ``RATE_LIMIT_KINDS``."""
        self.rate_limit_blocks.labels(limit=limit).inc()
        self.seed.inc(f"stt_rate_limit_blocks_{limit}")

    def set_stream_buffer(self, session_id: str, nbytes: int) -> None:
        """Per-stream buffer gauge; ``nbytes < 0`` removes the stream's series."""
        self.stream_buffers_collector.set(hashed_stream_key(session_id), nbytes)

    def stream_buffers(self) -> dict[str, int]:
        return self.stream_buffers_collector.values()
