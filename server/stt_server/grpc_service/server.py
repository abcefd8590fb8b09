"""Build the ``grpc.aio`` server: SpeechToText, ``grpc.health.v1`` and reflection on one port."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from stt_server.config import ServerConfig
from stt_server.grpc_service.servicer import SpeechToTextServicer
from stt_server.grpc_service.wire import add_servicer
from stt_server.proto_gen import stt_pb2

SERVICE_NAME: Final = stt_pb2.DESCRIPTOR.services_by_name["SpeechToText"].full_name
# gRPC itself rejects messages past this, without our error code; messages between
# max_message_bytes and here get a catalogued ERR1005 from the servicer instead.
_TRANSPORT_SLACK_BYTES: Final = 1024 * 1024


def grpc_options(config: ServerConfig) -> list[tuple[str, int]]:
    """Channel options: message size caps and keepalive that detects vanished clients."""
    limit = config.server.max_message_bytes
    return [
        ("grpc.max_receive_message_length", limit + _TRANSPORT_SLACK_BYTES),
        ("grpc.max_send_message_length", limit + _TRANSPORT_SLACK_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # a second server on the same port must fail loudly, not share the port
        ("grpc.so_reuseport", 0),
    ]


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    tls = config.server.tls
    if tls.cert_file is None or tls.key_file is None:
        return None
    return grpc.ssl_server_credentials([(Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes())])


class HealthStatus:
    """Sets the ``grpc.health.v1`` status of the overall server and of SpeechToText together."""

    def __init__(self) -> None:
        self.servicer = health.aio.HealthServicer()

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", SERVICE_NAME):
            await self.servicer.set(service, status)


def build_server(
    config: ServerConfig, *, servicer: SpeechToTextServicer, health_status: HealthStatus
) -> tuple[grpc.aio.Server, int]:
    """The server with every service added and its port bound (``grpc_port: 0`` picks one)."""
    server = grpc.aio.server(options=grpc_options(config))
    add_servicer(servicer, server)  # tolerant parsing: a corrupt message gets ERR1025, not UNKNOWN
    health_pb2_grpc.add_HealthServicer_to_server(health_status.servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{config.server.grpc_host}:{config.server.grpc_port}"
    credentials = server_credentials(config)
    try:
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc reports a taken port as RuntimeError
        raise OSError(f"cannot bind gRPC to {address}: address already in use or not available") from exc
    if port == 0:
        raise OSError(f"cannot bind gRPC to {address}: address already in use or not available")
    return server, port
