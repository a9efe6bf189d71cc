"""The SyncNet backend as the worker loop sees it: networks cached per worker, one evaluation per request.

A ``render`` request here scores a video instead of making one. Params: ``video``, optional ``audio``
(speech to score against instead of the video's own track), optional ``sheet`` (a PNG path),
``overwrite``, ``weights`` (``syncnet``, ``detector``), and ``vshift``, ``min_track``, ``box``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lipsync_kit.checkpoints import load_into, load_state_dict_file
from lipsync_kit.devices import resolve_device
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_kit.timing import StageClock
from lipsync_kit.worker import Reporter

from . import __version__
from .detection import FaceDetector, load_detector
from .evaluate import EvalOptions, evaluate_video
from .offsets import DEFAULT_VSHIFT
from .sheet import CROPS, draw_sheet, write_sheet
from .syncnet import SyncNet

__all__ = ["EvalRequest", "SyncNetBackend"]


@dataclass(frozen=True)
class EvalRequest:
    video: Path
    audio: Path | None
    sheet: Path | None
    overwrite: bool
    syncnet: Path
    detector: Path | None
    options: EvalOptions

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> EvalRequest:
        weights = params.get("weights", {})
        try:
            box = params.get("box")
            return cls(
                video=Path(params["video"]),
                audio=Path(params["audio"]) if params.get("audio") else None,
                sheet=Path(params["sheet"]) if params.get("sheet") else None,
                overwrite=bool(params.get("overwrite", False)),
                syncnet=Path(weights["syncnet"]),
                detector=Path(weights["detector"]) if weights.get("detector") else None,
                options=EvalOptions(
                    vshift=int(params.get("vshift", DEFAULT_VSHIFT)),
                    min_track=int(params["min_track"]) if params.get("min_track") is not None else None,
                    box=tuple(float(v) for v in box) if box else None,  # type: ignore[arg-type]
                    keep_crops=CROPS if params.get("sheet") else 0,
                ),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BackendError(ErrorCode.BAD_OPTION, f"bad eval request: {err!r}") from err


def load_syncnet(path: Path, device: torch.device) -> SyncNet:
    """SyncNet in eval mode from ``syncnet_v2.model`` (a bare state dict; strict, weights only)."""
    model = SyncNet()
    load_into(model, load_state_dict_file(path), source=str(path))
    return model.eval().requires_grad_(False).to(device)


class SyncNetBackend:
    name = "syncnet"
    version = __version__

    def __init__(self, device: str) -> None:
        self.torch_device = resolve_device(device)
        self.device = str(self.torch_device)
        self._nets: dict[Path, SyncNet] = {}
        self._detectors: dict[Path, FaceDetector] = {}
        self.model_loads = 0

    def capabilities(self) -> dict[str, Any]:
        return {"models": ["syncnet"], "metrics": ["lse_d", "lse_c", "offset"], "sheet": ["png"]}

    def _net(self, path: Path) -> SyncNet:
        if path not in self._nets:
            self._nets[path] = load_syncnet(path, self.torch_device)
            self.model_loads += 1
        return self._nets[path]

    def _detector(self, path: Path) -> FaceDetector:
        if path not in self._detectors:
            self._detectors[path] = FaceDetector(load_detector(path, self.torch_device), self.torch_device)
            self.model_loads += 1
        return self._detectors[path]

    def render(self, params: dict[str, Any], reporter: Reporter) -> tuple[str | None, dict[str, Any]]:
        request = EvalRequest.from_params(params)
        sheet = request.sheet
        if sheet is not None and sheet.exists() and not request.overwrite:
            raise BackendError(ErrorCode.OUTPUT_EXISTS, f"{sheet} exists", "pass --overwrite to replace it")
        if sheet is not None and not os.access(sheet.parent, os.W_OK):
            raise BackendError(ErrorCode.OUTPUT_UNWRITABLE, f"cannot write into {sheet.parent}")
        clock = StageClock()
        net = self._net(request.syncnet)
        detector: FaceDetector | None = None
        if request.options.box is None:
            if request.detector is None:
                raise BackendError(ErrorCode.WEIGHTS_MISSING, "no face-detector weights were given")
            detector = self._detector(request.detector)
        clock.lap("load_models")
        result = evaluate_video(
            request.video,
            request.audio,
            net,
            detector,
            self.torch_device,
            request.options,
            lambda stage, done, total: reporter.progress(stage, done, total),
        )
        clock.lap("evaluate")
        stats = result.to_stats()
        if sheet is not None:
            write_sheet(draw_sheet(result, request.video.name), sheet)
            clock.lap("sheet")
        stats["seconds"] = clock.seconds
        stats["model_loads"] = self.model_loads
        return (str(sheet) if sheet is not None else None), stats
