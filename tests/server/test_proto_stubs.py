"""The committed gRPC stubs must match what protoc generates from proto/ today."""

from __future__ import annotations

from pathlib import Path

from stt_server import proto_build


def test_committed_stubs_are_fresh(tmp_path: Path) -> None:
    generated = proto_build.generate(tmp_path)
    stale = [
        path.name
        for path in generated
        if path.read_text() != (proto_build.DEFAULT_OUT / path.name).read_text()
    ]
    assert not stale, f"stale stubs {stale}: run python -m stt_server.proto_build"


def test_stubs_import_as_a_subpackage() -> None:
    from stt_server.proto_gen import stt_pb2, stt_pb2_grpc

    service = stt_pb2.DESCRIPTOR.services_by_name["SpeechToText"]
    assert {m.name for m in service.methods} == {
        "CreateSession", "StreamingRecognize", "Recognize", "GetServerInfo"
    }
    assert hasattr(stt_pb2_grpc, "SpeechToTextServicer")
    request = stt_pb2.StreamingRecognizeRequest(session_id="abc")
    assert request.WhichOneof("streaming_request") == "session_id"
