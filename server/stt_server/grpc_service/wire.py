"""Registering the servicer with request parsing that cannot fail inside gRPC.

grpc.aio parses each request with the method's deserializer before our code sees it. When that
raises, a unary call ends UNKNOWN ("Unexpected DecodeError") with a traceback in the log and no
metric, and a stream's request iterator just stops, which looks exactly like a client half-close.
Here the deserializer returns a ``MalformedMessage`` instead, so the servicer answers ERR1025 with
its status, metrics and one log line, and a stream never finalises on a corrupt message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from stt_server.proto_gen import stt_pb2

SERVICE: Final = "sttfleet.v1.SpeechToText"
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class MalformedMessage:
    """A request whose bytes are not a valid ``type_name`` protobuf message."""

    type_name: str
    nbytes: int


def tolerant_parser(message_type: type[M]) -> Callable[[bytes], M | MalformedMessage]:
    """``message_type.FromString`` that returns a ``MalformedMessage`` instead of raising."""
    name = message_type.DESCRIPTOR.name

    def parse(data: bytes) -> M | MalformedMessage:
        try:
            return message_type.FromString(data)
        except (DecodeError, ValueError, RuntimeError):  # RuntimeError: recursion limit on nested junk
            return MalformedMessage(type_name=name, nbytes=len(data))

    return parse


def add_servicer(servicer: Any, server: grpc.aio.Server) -> None:
    """``add_SpeechToTextServicer_to_server`` with tolerant request parsing (same method table)."""
    handlers = {
        "CreateSession": grpc.unary_unary_rpc_method_handler(
            servicer.CreateSession,
            request_deserializer=tolerant_parser(stt_pb2.CreateSessionRequest),
            response_serializer=stt_pb2.CreateSessionResponse.SerializeToString),
        "StreamingRecognize": grpc.stream_stream_rpc_method_handler(
            servicer.StreamingRecognize,
            request_deserializer=tolerant_parser(stt_pb2.StreamingRecognizeRequest),
            response_serializer=stt_pb2.StreamingRecognizeResponse.SerializeToString),
        "Recognize": grpc.unary_unary_rpc_method_handler(
            servicer.Recognize,
            request_deserializer=tolerant_parser(stt_pb2.RecognizeRequest),
            response_serializer=stt_pb2.RecognizeResponse.SerializeToString),
        "GetServerInfo": grpc.unary_unary_rpc_method_handler(
            servicer.GetServerInfo,
            request_deserializer=tolerant_parser(stt_pb2.GetServerInfoRequest),
            response_serializer=stt_pb2.GetServerInfoResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
