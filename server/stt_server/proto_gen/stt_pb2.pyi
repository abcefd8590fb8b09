from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    LINEAR16: _ClassVar[AudioEncoding]
    WAV: _ClassVar[AudioEncoding]
ENCODING_UNSPECIFIED: AudioEncoding
LINEAR16: AudioEncoding
WAV: AudioEncoding

class EndpointingConfig(_message.Message):
    __slots__ = ("speech_start_ms", "end_silence_ms", "max_utterance_sec")
    SPEECH_START_MS_FIELD_NUMBER: _ClassVar[int]
    END_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_UTTERANCE_SEC_FIELD_NUMBER: _ClassVar[int]
    speech_start_ms: int
    end_silence_ms: int
    max_utterance_sec: float
    def __init__(self, speech_start_ms: _Optional[int] = ..., end_silence_ms: _Optional[int] = ..., max_utterance_sec: _Optional[float] = ...) -> None: ...

class RecognitionConfig(_message.Message):
    __slots__ = ("encoding", "sample_rate_hertz", "audio_channel_count", "language_code", "auto_detect_language", "model", "enable_word_time_offsets", "endpointing", "request_id")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HERTZ_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHANNEL_COUNT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    AUTO_DETECT_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENABLE_WORD_TIME_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hertz: int
    audio_channel_count: int
    language_code: str
    auto_detect_language: bool
    model: str
    enable_word_time_offsets: bool
    endpointing: EndpointingConfig
    request_id: str
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hertz: _Optional[int] = ..., audio_channel_count: _Optional[int] = ..., language_code: _Optional[str] = ..., auto_detect_language: _Optional[bool] = ..., model: _Optional[str] = ..., enable_word_time_offsets: _Optional[bool] = ..., endpointing: _Optional[_Union[EndpointingConfig, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StreamingRecognitionConfig(_message.Message):
    __slots__ = ("config", "interim_results", "single_utterance")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    INTERIM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SINGLE_UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    config: RecognitionConfig
    interim_results: bool
    single_utterance: bool
    def __init__(self, config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., interim_results: _Optional[bool] = ..., single_utterance: _Optional[bool] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_message_bytes", "max_stream_duration_sec", "max_sessions", "max_sessions_per_api_key", "requests_per_minute_per_api_key", "session_idle_timeout_sec", "session_ttl_sec", "max_stream_buffer_bytes", "max_total_buffer_bytes", "max_decode_pending")
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAM_DURATION_SEC_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_PER_API_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_PER_API_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_IDLE_TIMEOUT_SEC_FIELD_NUMBER: _ClassVar[int]
    SESSION_TTL_SEC_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAM_BUFFER_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_TOTAL_BUFFER_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_DECODE_PENDING_FIELD_NUMBER: _ClassVar[int]
    max_message_bytes: int
    max_stream_duration_sec: float
    max_sessions: int
    max_sessions_per_api_key: int
    requests_per_minute_per_api_key: int
    session_idle_timeout_sec: float
    session_ttl_sec: float
    max_stream_buffer_bytes: int
    max_total_buffer_bytes: int
    max_decode_pending: int
    def __init__(self, max_message_bytes: _Optional[int] = ..., max_stream_duration_sec: _Optional[float] = ..., max_sessions: _Optional[int] = ..., max_sessions_per_api_key: _Optional[int] = ..., requests_per_minute_per_api_key: _Optional[int] = ..., session_idle_timeout_sec: _Optional[float] = ..., session_ttl_sec: _Optional[float] = ..., max_stream_buffer_bytes: _Optional[int] = ..., max_total_buffer_bytes: _Optional[int] = ..., max_decode_pending: _Optional[int] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("streaming_config",)
    STREAMING_CONFIG_FIELD_NUMBER: _ClassVar[int]
    streaming_config: StreamingRecognitionConfig
    def __init__(self, streaming_config: _Optional[_Union[StreamingRecognitionConfig, _Mapping]] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("session_id", "expires_in_sec", "limits", "request_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_SEC_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    expires_in_sec: float
    limits: Limits
    request_id: str
    def __init__(self, session_id: _Optional[str] = ..., expires_in_sec: _Optional[float] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StreamingRecognizeRequest(_message.Message):
    __slots__ = ("session_id", "streaming_config", "audio_content")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STREAMING_CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONTENT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    streaming_config: StreamingRecognitionConfig
    audio_content: bytes
    def __init__(self, session_id: _Optional[str] = ..., streaming_config: _Optional[_Union[StreamingRecognitionConfig, _Mapping]] = ..., audio_content: _Optional[bytes] = ...) -> None: ...

class WordInfo(_message.Message):
    __slots__ = ("word", "start_sec", "end_sec", "confidence")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_SEC_FIELD_NUMBER: _ClassVar[int]
    END_SEC_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    word: str
    start_sec: float
    end_sec: float
    confidence: float
    def __init__(self, word: _Optional[str] = ..., start_sec: _Optional[float] = ..., end_sec: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class SpeechRecognitionAlternative(_message.Message):
    __slots__ = ("transcript", "confidence", "words")
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    transcript: str
    confidence: float
    words: _containers.RepeatedCompositeFieldContainer[WordInfo]
    def __init__(self, transcript: _Optional[str] = ..., confidence: _Optional[float] = ..., words: _Optional[_Iterable[_Union[WordInfo, _Mapping]]] = ...) -> None: ...

class StreamingRecognitionResult(_message.Message):
    __slots__ = ("alternatives", "is_final", "stability", "stable_text", "unstable_text", "result_start_sec", "result_end_sec", "utterance_index", "language_code")
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    STABILITY_FIELD_NUMBER: _ClassVar[int]
    STABLE_TEXT_FIELD_NUMBER: _ClassVar[int]
    UNSTABLE_TEXT_FIELD_NUMBER: _ClassVar[int]
    RESULT_START_SEC_FIELD_NUMBER: _ClassVar[int]
    RESULT_END_SEC_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    alternatives: _containers.RepeatedCompositeFieldContainer[SpeechRecognitionAlternative]
    is_final: bool
    stability: float
    stable_text: str
    unstable_text: str
    result_start_sec: float
    result_end_sec: float
    utterance_index: int
    language_code: str
    def __init__(self, alternatives: _Optional[_Iterable[_Union[SpeechRecognitionAlternative, _Mapping]]] = ..., is_final: _Optional[bool] = ..., stability: _Optional[float] = ..., stable_text: _Optional[str] = ..., unstable_text: _Optional[str] = ..., result_start_sec: _Optional[float] = ..., result_end_sec: _Optional[float] = ..., utterance_index: _Optional[int] = ..., language_code: _Optional[str] = ...) -> None: ...

class SpeechEvent(_message.Message):
    __slots__ = ("type", "offset_sec")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SPEECH_EVENT_UNSPECIFIED: _ClassVar[SpeechEvent.Type]
        SPEECH_BEGIN: _ClassVar[SpeechEvent.Type]
        SPEECH_END: _ClassVar[SpeechEvent.Type]
        END_OF_SINGLE_UTTERANCE: _ClassVar[SpeechEvent.Type]
    SPEECH_EVENT_UNSPECIFIED: SpeechEvent.Type
    SPEECH_BEGIN: SpeechEvent.Type
    SPEECH_END: SpeechEvent.Type
    END_OF_SINGLE_UTTERANCE: SpeechEvent.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_SEC_FIELD_NUMBER: _ClassVar[int]
    type: SpeechEvent.Type
    offset_sec: float
    def __init__(self, type: _Optional[_Union[SpeechEvent.Type, str]] = ..., offset_sec: _Optional[float] = ...) -> None: ...

class StreamingRecognizeResponse(_message.Message):
    __slots__ = ("results", "speech_event", "audio_processed_sec", "session_id", "request_id")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_EVENT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_PROCESSED_SEC_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[StreamingRecognitionResult]
    speech_event: SpeechEvent
    audio_processed_sec: float
    session_id: str
    request_id: str
    def __init__(self, results: _Optional[_Iterable[_Union[StreamingRecognitionResult, _Mapping]]] = ..., speech_event: _Optional[_Union[SpeechEvent, _Mapping]] = ..., audio_processed_sec: _Optional[float] = ..., session_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RecognizeRequest(_message.Message):
    __slots__ = ("config", "audio_content")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONTENT_FIELD_NUMBER: _ClassVar[int]
    config: RecognitionConfig
    audio_content: bytes
    def __init__(self, config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., audio_content: _Optional[bytes] = ...) -> None: ...

class RecognizeResponse(_message.Message):
    __slots__ = ("results", "audio_duration_sec", "request_id")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_DURATION_SEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[StreamingRecognitionResult]
    audio_duration_sec: float
    request_id: str
    def __init__(self, results: _Optional[_Iterable[_Union[StreamingRecognitionResult, _Mapping]]] = ..., audio_duration_sec: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "device", "compute_type", "multilingual")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TYPE_FIELD_NUMBER: _ClassVar[int]
    MULTILINGUAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    device: str
    compute_type: str
    multilingual: bool
    def __init__(self, name: _Optional[str] = ..., device: _Optional[str] = ..., compute_type: _Optional[str] = ..., multilingual: _Optional[bool] = ...) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("version", "models", "languages", "encodings", "sample_rates_hertz", "limits", "ready", "api_key_required")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATES_HERTZ_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    API_KEY_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    version: str
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    languages: _containers.RepeatedScalarFieldContainer[str]
    encodings: _containers.RepeatedScalarFieldContainer[AudioEncoding]
    sample_rates_hertz: _containers.RepeatedScalarFieldContainer[int]
    limits: Limits
    ready: bool
    api_key_required: bool
    def __init__(self, version: _Optional[str] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., languages: _Optional[_Iterable[str]] = ..., encodings: _Optional[_Iterable[_Union[AudioEncoding, str]]] = ..., sample_rates_hertz: _Optional[_Iterable[int]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., ready: _Optional[bool] = ..., api_key_required: _Optional[bool] = ...) -> None: ...
