"""Audio decoding: LINEAR16, WAV containers, resampling to 16 kHz, clear errors on bad input."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest
from stt_server.engine.audio import (
    SUPPORTED_RATES,
    PcmDecoder,
    Resampler,
    decode_audio_bytes,
    decode_wav,
    pcm16_to_float32,
    resample,
)
from stt_server.engine.errors import AudioFormatError
from stt_server.errors import ErrorCode


def sine(hz: float, *, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, *, rate: int = 16_000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)


def wav_bytes(samples: np.ndarray, *, rate: int, channels: int = 1, width: int = 2) -> bytes:
    scale = {1: 127, 2: 32767, 4: 2**31 - 1}[width]
    ints = np.round(samples * scale).astype({1: np.int16, 2: "<i2", 4: "<i4"}[width])
    if width == 1:
        ints = (ints + 128).astype(np.uint8)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(ints.tobytes())
    return buf.getvalue()


def test_pcm16_round_trip_scale() -> None:
    data = np.array([0, 16384, -32768, 32767], dtype="<i2").tobytes()
    out = pcm16_to_float32(data)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.5, -1.0, 32767 / 32768])


def test_odd_byte_count_is_a_catalogued_value_error() -> None:
    with pytest.raises(AudioFormatError) as caught:
        pcm16_to_float32(b"\x00\x01\x02", index=7)
    assert isinstance(caught.value, ValueError)
    assert caught.value.code is ErrorCode.ODD_BYTE_COUNT
    assert "message 7 has 3 bytes" in caught.value.message


def test_stereo_pcm_needs_whole_frames_and_is_mixed_down() -> None:
    frames = np.array([[1000, 3000], [-2000, 2000]], dtype="<i2").tobytes()
    np.testing.assert_allclose(pcm16_to_float32(frames, channels=2), [2000 / 32768, 0.0])
    with pytest.raises(AudioFormatError):
        pcm16_to_float32(frames[:6], channels=2)


@pytest.mark.parametrize("rate", SUPPORTED_RATES)
def test_resampled_sine_keeps_its_frequency_and_duration(rate: int) -> None:
    out = resample(sine(1000.0, rate=rate), source_rate=rate)
    assert abs(out.size - 16_000) <= 2
    assert abs(peak_hz(out) - 1000.0) <= 2.0
    assert 0.3 < float(np.sqrt(np.mean(out[200:-200] ** 2))) < 0.4  # amplitude kept (0.5 peak -> 0.354 RMS)


def test_streaming_resampler_matches_one_shot() -> None:
    audio = sine(440.0, rate=44_100, seconds=2.0)
    stream = Resampler(44_100)
    pieces = [stream.process(audio[i:i + 4410]) for i in range(0, audio.size, 4410)] + [stream.flush()]
    np.testing.assert_allclose(np.concatenate(pieces), resample(audio, source_rate=44_100), atol=1e-6)


def test_frequencies_above_the_new_nyquist_are_removed() -> None:
    out = resample(sine(12_000.0, rate=48_000), source_rate=48_000)
    assert float(np.sqrt(np.mean(out[200:-200] ** 2))) < 0.01  # no alias at 4 kHz


def test_unsupported_rate_names_the_accepted_ones() -> None:
    with pytest.raises(AudioFormatError) as caught:
        PcmDecoder(sample_rate=12_345)
    assert caught.value.code is ErrorCode.UNSUPPORTED_AUDIO
    assert "12345" in caught.value.message and "44100" in caught.value.message


def test_pcm_decoder_resamples_across_message_boundaries() -> None:
    audio = sine(300.0, rate=8_000, seconds=1.0)
    decoder = PcmDecoder(sample_rate=8_000)
    pcm = (audio * 32767).astype("<i2").tobytes()
    out = np.concatenate([decoder.decode(pcm[i:i + 320]) for i in range(0, len(pcm), 320)] + [decoder.flush()])
    assert abs(out.size - 16_000) <= 2
    assert abs(peak_hz(out) - 300.0) <= 2.0


@pytest.mark.parametrize("width", [1, 2, 4])
def test_wav_pcm_widths(width: int) -> None:
    parsed = decode_wav(wav_bytes(sine(500.0, rate=16_000), rate=16_000, width=width))
    assert parsed.bits_per_sample == width * 8
    np.testing.assert_allclose(parsed.samples, sine(500.0, rate=16_000), atol=2 / 127 if width == 1 else 1e-3)


def test_wav_stereo_44k_becomes_16k_mono() -> None:
    left, right = sine(700.0, rate=44_100), sine(700.0, rate=44_100)
    stereo = np.stack([left, right], axis=1).reshape(-1)
    parsed = decode_wav(wav_bytes(stereo, rate=44_100, channels=2))
    assert (parsed.source_rate, parsed.channels) == (44_100, 2)
    assert abs(parsed.samples.size - 16_000) <= 2
    assert abs(peak_hz(parsed.samples) - 700.0) <= 2.0


def test_wav_float32_and_24_bit() -> None:
    audio = sine(250.0, rate=16_000)
    fmt = struct.pack("<HHIIHH", 3, 1, 16_000, 64_000, 4, 32)
    data = audio.astype("<f4").tobytes()
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    np.testing.assert_allclose(decode_wav(b"RIFF" + struct.pack("<I", len(body)) + body).samples, audio, atol=1e-6)

    ints = np.round(audio * (2**23 - 1)).astype("<i4")
    packed = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in ints)
    fmt24 = struct.pack("<HHIIHH", 1, 1, 16_000, 48_000, 3, 24)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt24 + b"data" + struct.pack("<I", len(packed)) + packed
    np.testing.assert_allclose(decode_wav(b"RIFF" + struct.pack("<I", len(body)) + body).samples, audio, atol=1e-5)


@pytest.mark.parametrize(("data", "code", "words"), [
    (b"not a wav at all", ErrorCode.INVALID_AUDIO, "RIFF/WAVE"),
    (b"RIFF\x04\x00\x00\x00WAVE", ErrorCode.INVALID_AUDIO, "no fmt chunk"),
    (b"RIFF\x18\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16),
     ErrorCode.INVALID_AUDIO, "no data chunk"),
    (b"RIFF\x20\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + struct.pack("<HHIIHH", 1, 1, 12000, 24000, 2, 16)
     + b"data\x00\x00\x00\x00", ErrorCode.UNSUPPORTED_AUDIO, "12000"),
    (b"RIFF\x20\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + struct.pack("<HHIIHH", 2, 1, 16000, 8000, 1, 4)
     + b"data\x00\x00\x00\x00", ErrorCode.UNSUPPORTED_AUDIO, "4-bit"),
    (b"RIFF\x20\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + struct.pack("<HHIIHH", 6, 1, 16000, 16000, 1, 8)
     + b"data\x00\x00\x00\x00", ErrorCode.UNSUPPORTED_AUDIO, "format tag 6"),
])
def test_bad_wav_files_get_clear_errors(data: bytes, code: ErrorCode, words: str) -> None:
    with pytest.raises(AudioFormatError) as caught:
        decode_wav(data)
    assert caught.value.code is code
    assert words in caught.value.message


def test_decode_audio_bytes_detects_wav_or_raw() -> None:
    audio = sine(400.0, rate=24_000)
    from_wav = decode_audio_bytes(wav_bytes(audio, rate=24_000), sample_rate=16_000)
    from_raw = decode_audio_bytes((audio * 32767).astype("<i2").tobytes(), sample_rate=24_000)
    np.testing.assert_allclose(from_wav, from_raw, atol=1e-4)
