"""lipsync_kit.audio: decoding real files with the real ffmpeg, and the spectral helpers."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from lipsync_kit.audio import (
    check_speech,
    load_audio,
    log_mel_spectrogram,
    mel_filterbank,
    stft_magnitude,
)
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode
from standin import load_golden

RATE = 16000


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> Path:
    """16-bit PCM wav; `pcm` is (N,) or (N, channels) int16."""
    pcm = pcm.reshape(-1, 1) if pcm.ndim == 1 else pcm
    with wave.open(str(path), "wb") as out:
        out.setnchannels(pcm.shape[1])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True
    )


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def tone_amplitude(samples: np.ndarray, rate: int, hz: float) -> float:
    """Amplitude of a sinusoid at `hz` (least squares on sin/cos)."""
    t = np.arange(len(samples)) / rate
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, samples.astype(np.float64), rcond=None)
    return float(np.hypot(*coef))


@pytest.fixture(scope="module")
def stereo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s at 44.1 kHz: left 440 Hz at 0.5, right 1000 Hz at 0.3."""
    rate, seconds = 44100, 1.5
    t = np.arange(int(rate * seconds)) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1000 * t)
    pcm = np.round(np.stack([left, right], axis=1) * 32767).astype(np.int16)
    return write_wav(tmp_path_factory.mktemp("audio") / "stereo.wav", pcm, rate)


def test_pcm16_wav_loads_exactly(tmp_path: Path, wav2lip_data: Path) -> None:
    pcm16 = load_golden(wav2lip_data / "golden_pipeline.npz")["pcm16"]
    samples = load_audio(write_wav(tmp_path / "speech.wav", pcm16, RATE), RATE)
    assert samples.dtype == np.float32
    np.testing.assert_array_equal(samples, pcm16.astype(np.float32) / 32768)


def test_stereo_is_the_mean_of_the_channels(stereo_source: Path) -> None:
    with wave.open(str(stereo_source)) as src:
        pcm = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2").reshape(-1, 2)
    samples = load_audio(stereo_source, 44100)  # same rate: no resampling, only the downmix
    np.testing.assert_allclose(samples, pcm.mean(axis=1) / 32768, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    ("suffix", "codec"), [(".mp3", "libmp3lame"), (".ogg", "libopus"), (".flac", "flac")]
)
def test_compressed_stereo_decodes_to_16k_mono(
    stereo_source: Path, tmp_path: Path, suffix: str, codec: str
) -> None:
    encoded = tmp_path / f"speech{suffix}"
    ffmpeg("-i", str(stereo_source), "-c:a", codec, str(encoded))
    samples = load_audio(encoded, RATE)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 1.5 * RATE) <= 0.01 * RATE  # codec padding is trimmed to within 10 ms
    middle = samples[RATE // 4 : RATE + RATE // 4]
    assert abs(peak_hz(middle, RATE) - 440) < 2
    assert tone_amplitude(middle, RATE, 440) == pytest.approx(0.25, abs=0.02)  # 0.5 / 2, not 0.5 / sqrt 2
    assert tone_amplitude(middle, RATE, 1000) == pytest.approx(0.15, abs=0.02)


def test_spectral_helpers_find_a_tone() -> None:
    t = np.arange(RATE) / RATE
    magnitude = stft_magnitude(np.sin(2 * np.pi * 1000 * t), n_fft=800, hop=200, win=800, pad_mode="reflect")
    assert magnitude.shape == (401, 1 + RATE // 200)
    assert magnitude.dtype == np.float32
    assert np.all(np.argmax(magnitude[:, 2:-2], axis=0) == 50)  # 1000 Hz / (16000 / 800) Hz per bin
    assert magnitude[50, 40] == pytest.approx(800 / 4, rel=1e-3)  # |X| of a unit sine under a Hann window
    basis = mel_filterbank(RATE, 800, 80, 55.0, 7600.0)
    assert basis is mel_filterbank(RATE, 800, 80, 55.0, 7600.0)  # cached
    assert not basis.flags.writeable


def test_stft_padding_modes_differ_only_at_the_edges() -> None:
    rng = np.random.default_rng(3)
    y = rng.standard_normal(4000)
    reflect = stft_magnitude(y, n_fft=800, hop=200, win=800, pad_mode="reflect")
    zeros = stft_magnitude(y, n_fft=800, hop=200, win=800, pad_mode="constant")
    assert reflect.shape == zeros.shape == (401, 21)
    np.testing.assert_array_equal(reflect[:, 2:-2], zeros[:, 2:-2])  # frames that never reach the padding
    assert np.abs(reflect[:, 0] - zeros[:, 0]).max() > 1.0
    # Frame 0 of the zero-padded STFT is the first 400 samples behind 400 zeros, under the window.
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(800) / 800)
    first = np.abs(np.fft.rfft(np.concatenate([np.zeros(400), y[:400]]) * window))
    np.testing.assert_allclose(zeros[:, 0], first, rtol=1e-5, atol=1e-4)


def test_stft_zero_padding_takes_short_signals() -> None:
    assert stft_magnitude(np.ones(10), n_fft=800, hop=200, win=800, pad_mode="constant").shape == (401, 1)
    with pytest.raises(ValueError, match="at least 401 samples"):
        stft_magnitude(np.ones(400), n_fft=800, hop=200, win=800, pad_mode="reflect")
    with pytest.raises(ValueError, match="pad_mode"):
        stft_magnitude(np.ones(1000), n_fft=800, hop=200, win=800, pad_mode="edge")  # type: ignore[arg-type]


@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_log_mel_of_silence_is_the_floor_and_a_tone_is_above_it(pad_mode: str) -> None:
    silence = log_mel_spectrogram(np.zeros(4000, dtype=np.float32), pad_mode=pad_mode)
    assert silence.shape == (80, 21) and silence.dtype == np.float32
    assert np.all(silence == -4.0)
    tone = log_mel_spectrogram(0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE), pad_mode=pad_mode)
    assert tone.min() >= -4.0 and tone.max() <= 4.0
    assert tone[:, 40].argmax() == np.abs(mel_filterbank(RATE, 800, 80, 55.0, 7600.0)[:, 50]).argmax()


def expect_bad_audio(path: Path, *words: str) -> BackendError:
    with pytest.raises(BackendError) as err:
        load_audio(path, RATE)
    assert err.value.code == ErrorCode.BAD_AUDIO
    assert str(path) in err.value.message
    for word in words:
        assert word in err.value.message
    return err.value


def test_missing_file(tmp_path: Path) -> None:
    expect_bad_audio(tmp_path / "nope.wav", "not found")


def test_folder_is_not_audio(tmp_path: Path) -> None:
    expect_bad_audio(tmp_path, "not a file")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not speech\n" * 50)
    expect_bad_audio(path, "no audio stream")  # ffmpeg opens .txt as ANSI-art video: no sound in it


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF" + np.random.default_rng(0).bytes(4000))
    expect_bad_audio(path, "cannot decode")


def test_header_only_wav_has_no_samples(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.int16), RATE)
    expect_bad_audio(path, "0 samples")


def test_video_without_sound(tmp_path: Path) -> None:
    path = tmp_path / "silent_film.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1", "-c:v", "libx264", str(path))
    expect_bad_audio(path, "no audio stream")


def test_video_with_sound_gives_its_audio(tmp_path: Path, stereo_source: Path) -> None:
    path = tmp_path / "talk.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1.5", "-i", str(stereo_source), str(path)
    )
    samples = load_audio(path, RATE)
    assert abs(peak_hz(samples[RATE // 4 : RATE], RATE) - 440) < 2


def test_check_speech() -> None:
    with pytest.raises(BackendError) as err:
        check_speech(np.ones(99, dtype=np.float32), sample_rate=RATE, min_samples=100)
    assert err.value.code == ErrorCode.AUDIO_TOO_SHORT
    with pytest.raises(BackendError) as err:
        check_speech(np.zeros(100, dtype=np.float32), sample_rate=RATE, min_samples=100)
    assert err.value.code == ErrorCode.SILENT_AUDIO
    with pytest.raises(BackendError) as err:
        check_speech(np.full(100, np.nan, dtype=np.float32), sample_rate=RATE, min_samples=100)
    assert err.value.code == ErrorCode.BAD_AUDIO
    check_speech(np.ones(100, dtype=np.float32), sample_rate=RATE, min_samples=100)


@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_log_mel_in_column_blocks_equals_one_pass(pad_mode: str) -> None:
    """Long speech is processed in blocks (flat memory); the columns are those of a single pass.

    Only the mel matmul may round differently (BLAS picks its kernel by matrix width): 1e-5 is the
    golden tolerance of Wav2Lip's mel chunks, about 20 float32 spacings at the [-4, 4] range.
    """
    samples = np.random.default_rng(3).normal(0, 0.1, 16000 * 7 + 123).astype(np.float32)
    whole = log_mel_spectrogram(samples, pad_mode=pad_mode, block_columns=10**9)
    for block in (1, 7, 64, 300):
        blocked = log_mel_spectrogram(samples, pad_mode=pad_mode, block_columns=block)
        assert blocked.shape == whole.shape == (80, 1 + len(samples) // 200)
        np.testing.assert_allclose(blocked, whole, rtol=0, atol=1e-5)
