"""Resources row: process memory and CPU, buffers and the decode queue against their caps, GPU memory."""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import Panel

from stt_operator.dashboards.panels import RATE, SEL, Query, series
from stt_operator.spec_sections import Thresholds

# NVIDIA's dcgm-exporter (GPU nodes): framebuffer MiB used, labelled with the pod it serves.
GPU_MEMORY_USED_MIB: Final = "DCGM_FI_DEV_FB_USED"


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
        series("GPU memory used", [
            Query(f'sum by (pod) ({GPU_MEMORY_USED_MIB}{{namespace="$namespace", pod=~"$sttserver-.*", '
                  f'pod=~"$pod"}}) * 1048576', "{{pod}}"),
        ], unit="bytes", description="Framebuffer in use per pod, from NVIDIA dcgm-exporter (GPU nodes only)"),
        series("TLS certificate expires in", [
            Query(f"(min by (pod) (stt_tls_cert_expiry_timestamp_seconds{{{SEL}}}) - time()) / 86400", "{{pod}}"),
        ], unit="d", width=24, height=6, limit=None,
            description="Days until the serving certificate's notAfter (only while TLS is on)"),
    ]
