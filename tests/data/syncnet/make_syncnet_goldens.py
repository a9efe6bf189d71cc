"""Make the SyncNet parity goldens by running the official joonson/syncnet_python code.

    python make_syncnet_goldens.py SYNCNET_PYTHON_CHECKOUT OUT_DIR

Runs in a scratch venv that can import the official checkout (torch, numpy, scipy, opencv,
python_speech_features, scenedetect 0.5.1); see README.md next to this file for the versions used.
Nothing of the official code is copied: its modules are imported from the checkout, and the three
functions of ``run_pipeline.py`` (a script that parses arguments and runs at import) are compiled from
that file's own syntax tree. Stand-in weights come from ``tests/backends/standin_weights.py``
(identical to ``shared/reference/det_weights.py``).

Inputs are made from the committed ``tests/data/astronaut_256.jpg`` by integer shifts (see `clip_frames`),
and a synthetic voiced signal (`speech`), so the tests rebuild the same inputs without storing a video.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import tempfile
import types
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "backends"))
from standin_weights import make_state_dict  # noqa: E402

FPS = 25
SAMPLE_RATE = 16000
NUM_FRAMES = 40  # 1.6 s: 35 SyncNet windows, enough for the +-15 frame offset search
VSHIFT = 15
MIN_TRACK = 20  # the official default is 100 frames (4 s); the short clip needs a shorter bar
SCENE_FRAMES = 48


def clip_frames(base: np.ndarray, count: int) -> list[np.ndarray]:
    """Frame k: the portrait rolled by (dy, dx) = (k % 5 - 2, (k // 5) % 3 - 1) pixels."""
    return [np.roll(base, ((k % 5) - 2, ((k // 5) % 3) - 1), axis=(0, 1)) for k in range(count)]


def scene_frames(base: np.ndarray) -> list[np.ndarray]:
    """Cuts to a mirrored shot at 18, back at 25 (within 15 frames: ignored) and again at 36."""
    frames = clip_frames(base, SCENE_FRAMES)
    mirrored = {k for k in range(SCENE_FRAMES) if 18 <= k < 25 or k >= 36}
    return [np.ascontiguousarray(f[:, ::-1] // 2 + 60) if k in mirrored else f for k, f in enumerate(frames)]


def speech(num_samples: int) -> np.ndarray:
    """A voiced, syllable-modulated signal, int16 (the official code reads 16-bit PCM)."""
    t = np.arange(num_samples) / SAMPLE_RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(h * phase) / h for h in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
    noise = np.random.Generator(np.random.PCG64(7)).standard_normal(num_samples)
    return np.round(6000 * envelope * voiced + 300 * noise).astype(np.int16)


def synthetic_detections(count: int) -> list[list[dict]]:
    """Per-frame detections: one drifting face (missing at frames 7, 8 and 20) and a small distractor."""
    frames: list[list[dict]] = []
    for k in range(count):
        faces = []
        if k not in (7, 8, 20):
            box = [58.5 + 0.7 * k, 31.25 + 0.3 * (k % 4), 196.0 + 0.7 * k, 184.5 - 0.2 * (k % 3)]
            faces.append({"frame": k, "bbox": box, "conf": 0.99})
        if k % 3 == 0:
            faces.append({"frame": k, "bbox": [5.0, 200.0, 45.0, 240.0], "conf": 0.95})
        frames.append(faces)
    return frames


def pipeline_functions(checkout: Path, namespace: dict) -> dict:
    """Compile track_shot, crop_video and bb_intersection_over_union from the official run_pipeline.py."""
    tree = ast.parse((checkout / "run_pipeline.py").read_text())
    wanted = {"bb_intersection_over_union", "track_shot", "crop_video"}
    module = ast.Module(
        body=[n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted], type_ignores=[]
    )
    exec(compile(module, str(checkout / "run_pipeline.py"), "exec"), namespace)
    return namespace


class CapturingWriter:
    """Stands in for cv2.VideoWriter: keeps the frames the official crop_video writes (before XVID)."""

    frames: ClassVar[list[np.ndarray]] = []

    def __init__(self, *args: object) -> None:
        CapturingWriter.frames = []

    def write(self, frame: np.ndarray) -> None:
        CapturingWriter.frames.append(frame.copy())

    def release(self) -> None:
        pass


def schema(model: torch.nn.Module) -> list:
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]


def load_standins(model: torch.nn.Module) -> None:
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict({k: torch.from_numpy(v) for k, v in make_state_dict(shapes).items()}, strict=True)


def main(checkout: Path, out_dir: Path) -> None:
    torch.set_num_threads(2)
    np.int = int  # shim 1: box_utils.nms_ uses np.int, removed in numpy 1.24
    sys.path.insert(0, str(checkout))
    import python_speech_features
    import scenedetect.detectors.content_detector as content_module
    from scenedetect.detectors import ContentDetector
    from scenedetect.stats_manager import StatsManager
    from scipy import signal
    from scipy.interpolate import interp1d
    from SyncNetInstance import calc_pdist
    from SyncNetModel import S

    out_dir.mkdir(parents=True, exist_ok=True)
    base = cv2.imread(str(HERE.parent / "astronaut_256.jpg"))
    frames = clip_frames(base, NUM_FRAMES)
    audio = speech(NUM_FRAMES * SAMPLE_RATE // FPS)

    # ---- networks: schemas and stand-ins
    syncnet = S(num_layers_in_fc_layers=1024).eval()
    load_standins(syncnet)
    os.chdir(checkout)  # S3FD reads ./detectors/s3fd/weights/sfd_face.pth
    from detectors.s3fd.nets import S3FDNet

    detector_net = S3FDNet(device="cpu")
    (HERE / "schema_syncnet.json").write_text(json.dumps(schema(syncnet)))
    (HERE / "schema_sfd_face.json").write_text(json.dumps(schema(detector_net)))
    load_standins(detector_net)
    weights_dir = checkout / "detectors/s3fd/weights"
    weights_dir.mkdir(parents=True, exist_ok=True)
    torch.save(detector_net.state_dict(), weights_dir / "sfd_face.pth")
    from detectors import S3FD

    detector = S3FD(device="cpu")

    # ---- S3FD detections as run_pipeline.inference_video calls them (conf_th 0.9, scale 0.25) and at scale 1
    det = {}
    for name, conf_th, scale in (("det_q", 0.9, 0.25), ("det_full", 0.9, 1.0), ("det_low", 0.5, 1.0)):
        for k in (0, 1):
            rgb = cv2.cvtColor(frames[k], cv2.COLOR_BGR2RGB)
            det[f"{name}_{k}"] = detector.detect_faces(rgb, conf_th=conf_th, scales=[scale]).astype(
                np.float64
            )

    # ---- scene cuts: ContentDetector as scene_detect runs it (256 px wide: downscale factor 1)
    # shim 2: scenedetect 0.5.1 assigns into cv2.split's result, a tuple since OpenCV 4.6 (a list before)
    split_list = types.SimpleNamespace(**{n: getattr(cv2, n) for n in dir(cv2) if not n.startswith("__")})
    split_list.split = lambda image: list(cv2.split(image))
    content_module.cv2 = split_list
    stats = StatsManager()
    content = ContentDetector()
    content.stats_manager = stats
    cuts: list[int] = []
    for k, frame in enumerate(scene_frames(base)):
        cuts += content.process_frame(k, frame)
    content_val = [stats.get_metrics(k, ["content_val"])[0] for k in range(1, SCENE_FRAMES)]

    # ---- face track and crops: the official track_shot and crop_video on synthetic detections
    frames_dir = Path(tempfile.mkdtemp(prefix="syncnet_frames_"))
    (frames_dir / "clip").mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames):
        cv2.imwrite(str(frames_dir / "clip" / f"{k + 1:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 100])
    # The official crop_video reads JPEG files; here every "jpg" is read back through a lossless copy.
    lossless = {str(frames_dir / "clip" / f"{k + 1:06d}.jpg"): f for k, f in enumerate(frames)}
    cv2_proxy = types.SimpleNamespace(**{n: getattr(cv2, n) for n in dir(cv2) if not n.startswith("__")})
    cv2_proxy.VideoWriter = CapturingWriter
    cv2_proxy.imread = lambda path: lossless[path].copy()
    ok_call = types.SimpleNamespace(call=lambda *a, **k: 0)
    fake_wav = types.SimpleNamespace(read=lambda path: (SAMPLE_RATE, audio))
    ns = pipeline_functions(
        checkout,
        {
            "np": np,
            "cv2": cv2_proxy,
            "signal": signal,
            "interp1d": interp1d,
            "glob": __import__("glob"),
            "os": os,
            "subprocess": ok_call,
            "wavfile": fake_wav,
            "pdb": None,
        },
    )
    opt = types.SimpleNamespace(
        min_track=MIN_TRACK,
        num_failed_det=25,
        min_face_size=100,
        crop_scale=0.40,
        frame_rate=FPS,
        frames_dir=str(frames_dir),
        reference="clip",
        tmp_dir=str(frames_dir),
        avi_dir=str(frames_dir),
    )
    tracks = ns["track_shot"](opt, synthetic_detections(NUM_FRAMES))
    assert len(tracks) == 1, tracks
    os.remove = lambda path: None  # crop_video deletes its temp AVI, which the capture never wrote
    cropped = ns["crop_video"](opt, tracks[0], str(frames_dir / "crop"))
    crops = np.stack(CapturingWriter.frames)  # (N, 224, 224, 3) uint8 BGR

    # ---- MFCC and the SyncNet evaluation math (SyncNetInstance.evaluate on in-memory crops and audio)
    mfcc = np.stack([np.array(i) for i in zip(*python_speech_features.mfcc(audio, SAMPLE_RATE), strict=True)])
    im = torch.from_numpy(crops[None].transpose(0, 4, 1, 2, 3).astype(float)).float()  # (1, 3, N, 224, 224)
    cc = torch.from_numpy(mfcc[None, None].astype(float)).float()
    min_length = min(len(crops), len(audio) // 640)
    lastframe = min_length - 5
    with torch.no_grad():
        lip = torch.cat([syncnet.forward_lip(im[:, :, v : v + 5]) for v in range(lastframe)])
        aud = torch.cat([syncnet.forward_aud(cc[:, :, :, v * 4 : v * 4 + 20]) for v in range(lastframe)])
        lip_batched = torch.cat([im[:, :, v : v + 5] for v in range(0, 20)])
        lip_b20 = syncnet.forward_lip(lip_batched)
    dists = calc_pdist(lip, aud, vshift=VSHIFT)
    mdist = torch.mean(torch.stack(dists, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    offset = VSHIFT - minidx
    conf = torch.median(mdist) - minval
    fdist = np.stack([d[minidx].numpy() for d in dists])
    fconf = torch.median(mdist).numpy() - fdist
    fconfm = signal.medfilt(fconf, kernel_size=9)

    # Offset search on inputs with a known answer: audio features = lip features moved by 4 frames.
    rng = np.random.Generator(np.random.PCG64(1234))
    feat_v = torch.from_numpy(rng.standard_normal((30, 1024)).astype(np.float32))
    feat_a = torch.roll(feat_v, 4, dims=0) + 0.1 * torch.from_numpy(
        rng.standard_normal((30, 1024)).astype(np.float32)
    )
    shifted = calc_pdist(feat_v, feat_a, vshift=VSHIFT)
    shifted_mdist = torch.mean(torch.stack(shifted, 1), 1)

    np.savez_compressed(
        out_dir / "golden_syncnet.npz",
        audio=audio,
        mfcc=mfcc.astype(np.float64),
        crops_head=crops[:6],
        crop_sums=crops.reshape(len(crops), -1).sum(axis=1, dtype=np.int64),
        track_frame=tracks[0]["frame"].astype(np.int64),
        track_bbox=tracks[0]["bbox"].astype(np.float64),
        proc_x=np.asarray(cropped["proc_track"]["x"], dtype=np.float64),
        proc_y=np.asarray(cropped["proc_track"]["y"], dtype=np.float64),
        proc_s=np.asarray(cropped["proc_track"]["s"], dtype=np.float64),
        lip_embedding=lip.numpy(),
        audio_embedding=aud.numpy(),
        lip_embedding_batch20=lip_b20.numpy(),
        dists=np.stack([d.numpy() for d in dists]),
        mdist=mdist.numpy(),
        min_dist=np.float32(minval.item()),
        conf=np.float32(conf.item()),
        offset=np.int64(offset.item()),
        framewise_conf=fconfm.astype(np.float64),
        search_v=feat_v.numpy(),
        search_a=feat_a.numpy(),
        search_dists=np.stack([d.numpy() for d in shifted]),
        search_mdist=shifted_mdist.numpy(),
        scene_cuts=np.asarray(cuts, dtype=np.int64),
        scene_content_val=np.asarray(content_val, dtype=np.float64),
        base_checksum=np.int64(base.astype(np.int64).sum()),
        base_bgr=base,  # the decoded JPEG: the tests use it, so no JPEG decoder can make them differ
        **det,
    )
    print(f"offset {offset.item()} min dist {minval.item():.4f} conf {conf.item():.4f} cuts {cuts}")
    print({k: v.shape for k, v in det.items()})


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
