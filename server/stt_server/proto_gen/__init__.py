"""Generated gRPC stubs for sttfleet.v1 (do not edit; run python -m stt_server.proto_build)."""
