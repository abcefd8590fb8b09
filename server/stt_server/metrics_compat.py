"""Seed 003's and seed 004's metric names, so their dashboards and queries work against stt-server.

Seed 003 (a Whisper HTTP API) and seed 004 (a streaming STT stack) name metrics of their own.
Where one of their figures is one we already measure, it is derived here at scrape time from
``ServerMetrics`` (one source of truth, no second counter to drift). Figures we did not measure
before are real metrics registered in ``ServerMetrics`` under the seed's name:
``whisper_audio_load_duration_seconds``, ``grpc_request_duration_seconds``,
``audio_chunks_processed_total`` and the control plane's ``http_*`` metrics.

Seed 004's WebSocket and Redis metrics have no counterpart: stt-server speaks gRPC and keeps no
Redis. ``docs/operations.md`` lists every name and what it measures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from stt_server.metrics import ServerMetrics

GRPC_SERVICE: Final = "sttfleet.v1.SpeechToText"
REST_SERVICE: Final = "openai.v1.audio"  # the ``service`` label of REST calls (docs/rest-api.md)
PROTOCOLS: Final = ("grpc", "rest")
TRANSCRIPTION_METHODS: Final = frozenset({"Recognize", "StreamingRecognize"})
RESULT_TYPES: Final = {"partial": "interim", "final": "final"}

_Labels = dict[str, str]


def _samples(metric: Collector, suffix: str = "") -> Iterator[tuple[_Labels, float]]:
    """(labels, value) of every sample of ``metric`` whose name ends with ``suffix``."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.name == family.name + suffix:
                yield dict(sample.labels), float(sample.value)


def _value(metric: Collector) -> float:
    return sum(value for _, value in _samples(metric))


def _merged_histogram(source: Collector, name: str, documentation: str,
                      keep: Callable[[_Labels], bool]) -> HistogramMetricFamily:
    """One histogram adding up the label sets of ``source`` that ``keep`` accepts (same buckets)."""
    buckets: dict[str, float] = {}
    total = 0.0
    for family in source.collect():
        for sample in family.samples:
            labels = dict(sample.labels)
            bound = labels.pop("le", None)
            if not keep(labels):
                continue
            if sample.name.endswith("_bucket") and bound is not None:
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    ordered = sorted(buckets.items(), key=lambda item: float(item[0]))
    return HistogramMetricFamily(name, documentation, buckets=ordered or [("+Inf", 0.0)], sum_value=total)


class SeedCompatCollector(Collector):
    """Seed 003 / 004 names derived from the metrics ``ServerMetrics`` already keeps."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterable[Metric]:
        m = self._m
        yield GaugeMetricFamily("whisper_model_loaded", "1 when the Whisper model is loaded (stt_model_loaded)",
                                value=_value(m.model_loaded))
        yield GaugeMetricFamily("transcription_sessions_active", "Sessions currently open (stt_active_sessions)",
                                value=_value(m.active_sessions))

        requests = list(_samples(m.grpc_requests, "_total"))
        grpc = CounterMetricFamily("grpc_requests", "gRPC calls finished, by service, method and status",
                                   labels=["service", "method", "status"])
        for labels, value in requests:
            if labels.get("protocol", "grpc") == "grpc":  # seed 004's family counts gRPC calls only
                grpc.add_metric([GRPC_SERVICE, labels["method"], labels["grpc_status"]], value)
        yield grpc
        transcriptions = [(labels, value) for labels, value in requests if labels["method"] in TRANSCRIPTION_METHODS]
        yield CounterMetricFamily("whisper_transcription_requests",
                                  "Recognize and StreamingRecognize calls finished (gRPC and REST)",
                                  value=sum(value for _, value in transcriptions))
        yield CounterMetricFamily("whisper_transcription_errors",
                                  "Recognize and StreamingRecognize calls that ended with an error",
                                  value=sum(value for labels, value in transcriptions if labels["grpc_status"] != "OK"))
        sessions = CounterMetricFamily("transcription_sessions", "Streaming sessions ended, by final gRPC status",
                                       labels=["status"])
        for labels, value in requests:
            if labels["method"] == "StreamingRecognize":
                sessions.add_metric([labels["grpc_status"]], value)
        yield sessions

        results = CounterMetricFamily("transcription_results", "Results sent to clients (interim or final)",
                                      labels=["type"])
        for labels, value in _samples(m.results, "_total"):
            results.add_metric([RESULT_TYPES.get(labels["kind"], labels["kind"])], value)
        yield results

        yield _merged_histogram(m.grpc_request_seconds, "whisper_transcription_duration_seconds",
                                "Seconds per Recognize or StreamingRecognize call",
                                lambda labels: labels.get("method") in TRANSCRIPTION_METHODS)
        yield _merged_histogram(m.decode_phase_seconds, "whisper_inference_duration_seconds",
                                "Seconds in the model per decode (features and token decoding)",
                                lambda labels: labels.get("phase") == "inference")
        yield _merged_histogram(m.decode_phase_seconds, "whisper_decode_duration_seconds",
                                "Seconds per decode job end to end (buffer wait, queue wait, inference, emit)",
                                lambda labels: labels.get("phase") == "total")
        yield _merged_histogram(m.decode_phase_seconds, "whisper_processing_duration_seconds",
                                "Seconds of post-processing per decode (agreement, results, sending)",
                                lambda labels: labels.get("phase") == "response_emit")
