"""The SyncNet backend end to end on real files: scores, the 5-frame shift, the sheet, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import lipsync_syncnet.evaluate as evaluate_module
import numpy as np
import pytest
import torch
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_syncnet.backend import SyncNetBackend, load_syncnet
from lipsync_syncnet.evaluate import EvalOptions, evaluate_video
from lipsync_syncnet.offsets import SyncScores, distance_matrix, sync_scores
from lipsync_syncnet.sheet import SHEET_SIZE
from syncnet_clips import clip_frames, speech, write_clip

FRAMES = 60
BOX = (40.0, 20.0, 220.0, 220.0)
SHIFT = 5


class Quiet:
    def progress(self, stage: str, done: int, total: int) -> None:
        pass


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, portrait: np.ndarray) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("clip")
    audio = speech(FRAMES * 640)
    delayed = np.concatenate([np.zeros(SHIFT * 640, dtype=np.int16), audio[: -SHIFT * 640]])
    frames = clip_frames(portrait, FRAMES)
    return {
        "video": write_clip(out / "clip.mkv", frames, audio),
        "silent_video": write_clip(out / "mute.mkv", frames, None),
        "delayed": write_clip(out / "delayed.mkv", frames[:1], delayed, fps=1),
        "short": write_clip(out / "short.mkv", frames[:5], audio[: 5 * 640]),
    }


@pytest.fixture(scope="module")
def backend() -> SyncNetBackend:
    return SyncNetBackend("cpu")


def params(files: dict[str, Path], **extra: object) -> dict[str, object]:
    return {"weights": {k: str(v) for k, v in files.items()}, "box": list(BOX), **extra}


def test_scores_of_a_clip(
    backend: SyncNetBackend, clip: dict[str, Path], standin_files: dict[str, Path]
) -> None:
    output, stats = backend.render(params(standin_files, video=str(clip["video"])), Quiet())  # type: ignore[arg-type]
    assert output is None
    assert stats["frames"] == FRAMES and stats["fps"] == 25 and stats["face_share"] == 1.0
    assert stats["offsets"] == list(range(15, -16, -1)) and len(stats["curve"]) == 31
    assert stats["curve"][stats["offsets"].index(stats["offset_frames"])] == pytest.approx(
        stats["lse_c"], abs=1e-4
    )
    assert stats["offset_ms"] == 40 * stats["offset_frames"]
    assert len(stats["per_second"]) == 3 and all(isinstance(c, float) for c in stats["per_second"])
    assert [t["frames"] for t in stats["tracks"]] == [FRAMES]


def test_delayed_audio_moves_the_distances_by_five_frames(
    clip: dict[str, Path], standin_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every lip/audio pair that exists in both runs has the same distance, 5 offsets further on."""
    net = load_syncnet(standin_files["syncnet"], torch.device("cpu"))
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []

    def capture(lip: torch.Tensor, aud: torch.Tensor, vshift: int) -> SyncScores:
        captured.append((lip, aud))
        return sync_scores(lip, aud, vshift)

    monkeypatch.setattr(evaluate_module, "sync_scores", capture)
    opts = EvalOptions(box=BOX)
    for audio in (None, clip["delayed"]):
        evaluate_video(clip["video"], audio, net, None, torch.device("cpu"), opts, lambda *a: None)
    (lip1, aud1), (lip2, aud2) = captured
    torch.testing.assert_close(lip1, lip2, rtol=0, atol=0)
    # Audio window k of the delayed run is window k - 5 of the original one, to float rounding.
    torch.testing.assert_close(aud2[SHIFT:], aud1[:-SHIFT], rtol=0, atol=1e-4)
    d1, d2 = distance_matrix(lip1, aud1), distance_matrix(lip2, aud2)
    rows = slice(SHIFT + 15, len(lip1) - 15)  # rows whose audio windows are real in both runs at every offset
    torch.testing.assert_close(d2[rows, SHIFT:], d1[rows, :-SHIFT], rtol=0, atol=1e-3)


def test_sheet_png(
    backend: SyncNetBackend, clip: dict[str, Path], standin_files: dict[str, Path], tmp_path: Path
) -> None:
    sheet = tmp_path / "sheet.png"
    output, _ = backend.render(params(standin_files, video=str(clip["video"]), sheet=str(sheet)), Quiet())  # type: ignore[arg-type]
    assert output == str(sheet)
    image = cv2.imread(str(sheet))
    assert (image.shape[1], image.shape[0]) == SHEET_SIZE
    assert list(tmp_path.iterdir()) == [sheet]
    with pytest.raises(BackendError) as err:
        backend.render(params(standin_files, video=str(clip["video"]), sheet=str(sheet)), Quiet())  # type: ignore[arg-type]
    assert err.value.code == ErrorCode.OUTPUT_EXISTS


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("no_face", ErrorCode.NO_FACE),
        ("no_audio_stream", ErrorCode.BAD_AUDIO),
        ("short", ErrorCode.AUDIO_TOO_SHORT),
        ("not_a_video", ErrorCode.BAD_INPUT),
        ("still_image", ErrorCode.BAD_INPUT),
    ],
)
def test_bad_input(
    backend: SyncNetBackend,
    clip: dict[str, Path],
    standin_files: dict[str, Path],
    tmp_path: Path,
    case: str,
    code: str,
) -> None:
    sheet = tmp_path / "sheet.png"
    request = params(standin_files, video=str(clip["video"]), sheet=str(sheet))
    if case == "no_face":  # the stand-in detector finds nothing above the official 0.9
        request.pop("box")
    elif case == "no_audio_stream":
        request["video"] = str(clip["silent_video"])
    elif case == "short":
        request["video"] = str(clip["short"])
    elif case == "still_image":
        request["video"] = str(Path(__file__).resolve().parents[2] / "data" / "astronaut_256.jpg")
    else:
        text = tmp_path / "notes.txt"
        text.write_text("not a video\n")
        request["video"] = str(text)
    with pytest.raises(BackendError) as err:
        backend.render(request, Quiet())  # type: ignore[arg-type]
    assert err.value.code == code
    assert not sheet.exists()
