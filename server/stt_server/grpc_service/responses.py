"""Engine results and events -> wire messages (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from stt_server import __version__
from stt_server.config import ServerConfig
from stt_server.engine.audio import SUPPORTED_RATES
from stt_server.engine.types import RecognitionResult, SpeechEvent
from stt_server.grpc_service.stream_config import limits_message
from stt_server.metrics import DecodeTiming
from stt_server.proto_gen import stt_pb2

_EVENT_TYPES: Final[Mapping[str, stt_pb2.SpeechEvent.Type]] = {
    "speech_begin": stt_pb2.SpeechEvent.SPEECH_BEGIN,
    "speech_end": stt_pb2.SpeechEvent.SPEECH_END,
    "end_of_single_utterance": stt_pb2.SpeechEvent.END_OF_SINGLE_UTTERANCE,
}


def join_text(stable: str, unstable: str) -> str:
    """The full transcript of a result: the stable prefix, then the unstable tail."""
    if not stable:
        return unstable.strip()
    if not unstable:
        return stable.strip()
    return f"{stable.rstrip()} {unstable.lstrip()}"


def result_message(result: RecognitionResult) -> stt_pb2.StreamingRecognitionResult:
    """One engine result as a ``StreamingRecognitionResult``."""
    words = [
        stt_pb2.WordInfo(word=w.word.strip(), start_sec=w.start_sec, end_sec=w.end_sec, confidence=w.probability)
        for w in result.words
    ]
    alternative = stt_pb2.SpeechRecognitionAlternative(
        transcript=join_text(result.stable_text, result.unstable_text), confidence=result.confidence, words=words
    )
    return stt_pb2.StreamingRecognitionResult(
        alternatives=[alternative],
        is_final=result.is_final,
        stability=1.0 if result.is_final else result.stability,
        stable_text=result.stable_text,
        unstable_text=result.unstable_text,
        result_start_sec=result.start_sec,
        result_end_sec=result.end_sec,
        utterance_index=result.utterance_index,
        language_code=result.language,
    )


def stream_response(
    item: RecognitionResult | SpeechEvent, *, session_id: str, request_id: str, audio_processed_sec: float
) -> stt_pb2.StreamingRecognizeResponse:
    """A result or speech event as one ``StreamingRecognizeResponse``."""
    if isinstance(item, SpeechEvent):
        return stt_pb2.StreamingRecognizeResponse(
            speech_event=stt_pb2.SpeechEvent(type=_EVENT_TYPES.get(item.kind, stt_pb2.SpeechEvent.SPEECH_EVENT_UNSPECIFIED), offset_sec=item.offset_sec),
            audio_processed_sec=audio_processed_sec,
            session_id=session_id,
            request_id=request_id,
        )
    return stt_pb2.StreamingRecognizeResponse(
        results=[result_message(item)],
        audio_processed_sec=max(audio_processed_sec, item.audio_processed_sec),
        session_id=session_id,
        request_id=request_id,
    )


def timing_metadata(timing: DecodeTiming | None, count: int) -> tuple[tuple[str, str], ...]:
    """Seed 000's decode timing totals as ``StreamingRecognize`` trailing metadata."""
    if timing is None:
        timing = DecodeTiming(buffer_wait=0.0, queue_wait=0.0, inference=0.0, response_emit=0.0)
    return (
        ("stt-decode-buffer-wait-sec", f"{timing.buffer_wait:.6f}"),
        ("stt-decode-queue-wait-sec", f"{timing.queue_wait:.6f}"),
        ("stt-decode-inference-sec", f"{timing.inference:.6f}"),
        ("stt-decode-response-emit-sec", f"{timing.response_emit:.6f}"),
        ("stt-decode-total-sec", f"{timing.total:.6f}"),
        ("stt-decode-count", str(count)),
    )


def server_info_message(
    info: dict[str, Any], *, config: ServerConfig, ready: bool, api_key_required: bool
) -> stt_pb2.GetServerInfoResponse:
    """``GetServerInfo`` from the engine's ``info()`` and the config."""
    model = stt_pb2.ModelInfo(
        name=str(info.get("model", config.model.name)),
        device=str(info.get("device", config.model.device)),
        compute_type=str(info.get("compute_type", config.model.compute_type)),
        multilingual=bool(info.get("multilingual", not config.model.name.endswith(".en"))),
    )
    return stt_pb2.GetServerInfoResponse(
        version=__version__,
        models=[model],
        languages=[str(lang) for lang in info.get("languages", ["en"])],
        encodings=[stt_pb2.LINEAR16, stt_pb2.WAV],
        sample_rates_hertz=list(SUPPORTED_RATES),
        limits=limits_message(config),
        ready=ready,
        api_key_required=api_key_required,
    )
