"""Pure parts of the REST API: form validation, response formats, the error mapping."""

from __future__ import annotations

import json

import grpc
import pytest
from stt_server.engine.types import RecognitionResult, Word
from stt_server.errors import CATALOGUE, ErrorCode, SttError
from stt_server.rest import formats
from stt_server.rest.errors import HTTP_STATUS, error_body, error_response, http_status
from stt_server.rest.forms import parse_fields
from stt_server.rest.server import model_list


def result(text: str, start: float, end: float, *, words: tuple[Word, ...] = ()) -> RecognitionResult:
    return RecognitionResult(is_final=True, stable_text=text, unstable_text="", start_sec=start, end_sec=end,
                             audio_processed_sec=end, utterance_index=0, confidence=0.5, words=words, language="en")


RESULTS = [result("Hello there.", 0.0, 2.5), result("General Kenobi!", 30.0, 3725.5)]


def test_srt_and_vtt_cues() -> None:
    assert formats.render_srt(RESULTS) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n"
        "2\n00:00:30,000 --> 01:02:05,500\nGeneral Kenobi!\n")
    assert formats.render_vtt(RESULTS) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n00:00:30.000 --> 01:02:05.500\nGeneral Kenobi!\n")


def test_json_text_and_verbose_bodies() -> None:
    assert formats.render(RESULTS, response_format="json", duration_sec=40.2, language="en", words=False) == {
        "text": "Hello there. General Kenobi!", "usage": {"type": "duration", "seconds": 41}}
    assert formats.render(RESULTS, response_format="text", duration_sec=1, language="en",
                          words=False) == "Hello there. General Kenobi!\n"
    worded = [result("Hi you", 0.0, 1.0, words=(Word("Hi", 0.1, 0.3, 0.9), Word("you", 0.4, 0.8, 0.9)))]
    verbose = formats.render(worded, response_format="verbose_json", duration_sec=1.0, language="en", words=True)
    assert isinstance(verbose, dict)
    assert verbose["words"] == [{"word": "Hi", "start": 0.1, "end": 0.3}, {"word": "you", "start": 0.4, "end": 0.8}]
    assert verbose["segments"][0]["avg_logprob"] == pytest.approx(-0.693147, abs=1e-6)  # log(0.5)


def test_sse_event_is_one_data_line() -> None:
    assert formats.sse_event({"type": "transcript.text.done", "text": "a"}) == \
        b'data: {"type":"transcript.text.done","text":"a"}\n\n'


def test_fields_default_and_aliases() -> None:
    params = parse_fields({}, served_model="tiny.en")
    assert (params.model, params.response_format, params.stream, params.words) == ("tiny.en", "json", False, False)
    assert parse_fields({"model": ["whisper-1"]}, served_model="tiny.en").model == "tiny.en"
    words = parse_fields({"response_format": ["verbose_json"], "timestamp_granularities[]": ["segment", "word"],
                          "stream": ["true"]}, served_model="tiny.en")
    assert words.words and words.stream
    # words only change the decode when they will be returned
    assert not parse_fields({"timestamp_granularities[]": ["word"]}, served_model="tiny.en").words


@pytest.mark.parametrize(("fields", "code", "param"), [
    ({"model": ["whisper-2"]}, ErrorCode.UNKNOWN_MODEL, None),
    ({"response_format": ["xml"]}, ErrorCode.INVALID_FIELD, "response_format"),
    ({"temperature": ["hot"]}, ErrorCode.INVALID_FIELD, "temperature"),
    ({"temperature": ["nan"]}, ErrorCode.INVALID_FIELD, "temperature"),
    ({"temperature": ["-0.1"]}, ErrorCode.INVALID_FIELD, "temperature"),
    ({"stream": ["maybe"]}, ErrorCode.INVALID_FIELD, "stream"),
])
def test_bad_fields(fields: dict[str, list[str]], code: ErrorCode, param: str | None) -> None:
    with pytest.raises(SttError) as caught:
        parse_fields(fields, served_model="tiny.en")
    assert caught.value.code is code
    if param:
        assert error_body(caught.value)["error"]["param"] == param


def test_every_catalogue_status_has_an_http_status() -> None:
    assert {entry.status for entry in CATALOGUE.values()} <= set(HTTP_STATUS)
    assert http_status(SttError(ErrorCode.UPLOAD_TOO_LARGE, limit=1)) == 413
    assert http_status(SttError(ErrorCode.METHOD_NOT_ALLOWED)) == 405
    assert http_status(SttError(ErrorCode.MAX_SESSIONS, limit=1)) == 429
    assert HTTP_STATUS[grpc.StatusCode.UNAVAILABLE] == 503


def test_error_response_shape_and_retry_after() -> None:
    response = error_response(SttError(ErrorCode.API_KEY_RATE_LIMIT, limit=5).with_retry_after(1.2))
    assert response.status == 429 and response.headers["Retry-After"] == "2"
    assert response.text is not None
    body = json.loads(response.text)
    assert body == {"error": {"message": "ERR1013: rate limit of 5 requests per minute for this API key",
                              "type": "rate_limit_error", "param": None, "code": "ERR1013"}}


def test_model_list() -> None:
    assert [m["id"] for m in model_list("tiny.en", created=1)["data"]] == ["tiny.en", "whisper-1"]
    assert [m["id"] for m in model_list("whisper-1", created=1)["data"]] == ["whisper-1"]
