"""Resources row: process memory and CPU, buffers and the decode queue against their caps, GPU memory."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import Panel

from stt_operator.dashboards.panels import RATE, SEL, Query, series
from stt_operator.spec_sections import Thresholds


def panels(_: Thresholds) -> list[Builder[Panel]]:
    return [
        series("Resident memory", [
            Query(f"sum by (pod) (process_resident_memory_bytes{{{SEL}}})", "{{pod}}"),
        ], unit="bytes", description="Process RSS (prometheus_client's process collector)"),
        series("CPU", [
            Query(f"sum by (pod) (rate(process_cpu_seconds_total{{{SEL}}}[{RATE}]))", "{{pod}}"),
        ], unit="short", description="CPU seconds per second (1 = one core busy)"),
        series("Threads and open files", [
            Query(f"sum by (pod) (process_threads{{{SEL}}})", "threads {{pod}}"),
            Query(f"sum by (pod) (process_open_fds{{{SEL}}})", "fds {{pod}}"),
        ], unit="short", description="OS threads (model runtime, gRPC, executor) and open file descriptors"),
        series("Audio buffered", [
            Query(f"sum by (pod) (stt_buffer_bytes_total{{{SEL}}})", "{{pod}}"),
            Query(f"max(stt_max_total_buffer_bytes{{{SEL}}})", "cap per pod"),
        ], unit="bytes", description="Audio bytes waiting to be decoded; at the cap new audio is refused"),
        series("Decode queue depth", [
            Query(f"sum by (pod) (stt_decode_pending{{{SEL}}})", "{{pod}}"),
            Query(f"max(stt_decode_pending_cap{{{SEL}}})", "cap per pod"),
        ], unit="short", description="Decodes queued or running against maxDecodePending"),
        series("GPU memory", [
            Query(f"sum by (pod, gpu) (stt_gpu_memory_used_bytes{{{SEL}}})", "used {{pod}} GPU {{gpu}}"),
            Query(f"max by (pod, gpu) (stt_gpu_memory_total_bytes{{{SEL}}})", "size {{pod}} GPU {{gpu}}"),
        ], unit="bytes", description="Per GPU, from NVML at scrape time: only with metrics.enable_gpu_metrics "
                                     "(spec.server.enableGpuMetrics, on by default when gpu > 0) and a GPU"),
        series("TLS certificate expires in", [
            Query(f"(min by (pod) (stt_tls_cert_expiry_timestamp_seconds{{{SEL}}}) - time()) / 86400", "{{pod}}"),
        ], unit="d", width=24, height=6, limit=None,
            description="Days until the serving certificate's notAfter (only while TLS is on)"),
    ]
