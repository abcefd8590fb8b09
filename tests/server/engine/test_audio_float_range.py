"""Float WAVs with non-finite or absurd samples (issue 13, defect 3): refused or brought into range."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from stt_server.engine.audio import decode_wav, parse_wav, sanitize_float
from stt_server.engine.errors import AudioFormatError
from stt_server.errors import ErrorCode


def float_wav(samples: np.ndarray, *, rate: int = 16_000) -> bytes:
    data = np.asarray(samples, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def speechlike(seconds: float = 3.0, *, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
            + rng.normal(0, 0.01, t.size)).astype(np.float32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_with_their_count(bad: float) -> None:
    audio = speechlike()
    audio[1000:1010] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning may reach stderr either
        with pytest.raises(AudioFormatError) as caught:
            decode_wav(float_wav(audio))
    assert caught.value.code is ErrorCode.NON_FINITE_AUDIO
    assert caught.value.message.startswith("ERR1031: audio holds 10 non-finite samples")


def test_a_uniformly_huge_float_wav_is_scaled_back_keeping_its_shape() -> None:
    audio = speechlike()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decoded = decode_wav(float_wav(audio * np.float32(1e30))).samples
    assert np.all(np.isfinite(decoded)) and float(np.max(np.abs(decoded))) <= 1.0
    # same waveform up to one gain: the correlation with the original is ~1
    assert float(np.corrcoef(decoded, audio)[0, 1]) > 0.999


def test_a_few_huge_spikes_are_clipped_without_silencing_the_rest() -> None:
    audio = speechlike()
    spiked = audio.copy()
    spiked[::4000] = 1e30
    decoded = sanitize_float(spiked)
    assert float(np.max(np.abs(decoded))) <= 1.0
    untouched = np.ones(audio.size, bool)
    untouched[::4000] = False
    np.testing.assert_allclose(decoded[untouched], audio[untouched], atol=1e-6)


def test_in_range_float_audio_is_left_alone() -> None:
    audio = speechlike()
    np.testing.assert_array_equal(decode_wav(float_wav(audio)).samples, audio)


def test_the_header_gives_the_duration_without_decoding() -> None:
    header = parse_wav(float_wav(np.zeros(48_000, np.float32), rate=24_000))
    assert (header.rate, header.bits, header.channels) == (24_000, 32, 1)
    assert header.duration_sec == pytest.approx(2.0)
