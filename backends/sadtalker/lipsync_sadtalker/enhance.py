"""SadTalker's optional face enhancer (``--enhancer gfpgan``): find faces, restore with GFPGAN, paste back.

Follows gfpgan's ``GFPGANer.enhance`` with SadTalker's arguments (upscale 2, every face, paste back, no
background upsampler on CPU) and facexlib's ``FaceRestoreHelper``:

1. RetinaFace faces with score >= 0.97 (our `FaceAnalyzer.detect_faces`); faces whose two eye points are
   less than 5 px apart are skipped.
2. Each face is aligned by a similarity transform (``cv2.estimateAffinePartial2D``, LMEDS) of its five
   points onto the FFHQ 512 template and warped to 512 x 512 (bilinear, grey border).
3. GFPGAN restores the crop: RGB ``(x / 255 - 0.5) / 0.5`` in, output clamped to [-1, 1] and rounded back to
   uint8.
4. The frame is upscaled 2x with Lanczos (``cv2.INTER_LANCZOS4``); each restored face is warped back by the
   inverse transform (scaled by 2, plus a half-pixel-per-scale offset) and blended in with a soft mask:
   with a ParseNet (upstream's choice), its face-parsing mask (face classes, blurred); without one,
   facexlib's rectangle mask (the warped face square, eroded, then eroded and blurred in proportion to the
   face's size).

Differences from upstream, all deliberate:

* GFPGAN's noise maps are drawn from a generator that can be seeded (upstream: torch's global one).
* Faces are restored (and parsed) in batches across frames; upstream runs one face at a time.
* A face whose five points admit no similarity fit is skipped (upstream crashes on it).
* The arrays are RGB throughout (upstream converts to BGR for facexlib and back); every OpenCV step here
  works per channel, so only the grey border value is swapped to keep the same colour.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import cv2
import numpy as np
import torch
from torch import Tensor

from .face_analysis import DetectedFace
from .gfpgan import FACE_SIZE, GFPGANv1Clean, ParseNet, load_gfpgan, load_parsenet

__all__ = [
    "BORDER_RGB",
    "EYE_DIST_THRESHOLD",
    "FFHQ_TEMPLATE_512",
    "PARSE_DROPPED",
    "UPSCALE",
    "FaceDetector",
    "FaceEnhancer",
    "FoundFace",
    "align_face",
    "face_affine",
    "from_model_range",
    "gfpgan_restorer",
    "parse_masks",
    "paste_faces",
    "paste_transform",
    "rectangle_mask",
    "to_model_range",
    "upscale_background",
]

# facexlib FaceRestoreHelper: the five FFHQ points (eyes, nose tip, mouth corners) in a 512 x 512 face crop.
FFHQ_TEMPLATE_512: Final = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)
BORDER_RGB: Final = (132, 133, 135)  # facexlib's grey outside the frame, (135, 133, 132) in BGR
EYE_DIST_THRESHOLD: Final = 5.0  # GFPGANer skips faces whose eye points are closer than this (px)
UPSCALE: Final = 2  # SadTalker's GFPGANer(upscale=2)
# facexlib's paste: parsing classes left out of the face mask (background, neck, cloth, hair, hat); the
# other 14 (skin, brows, eyes, glasses, ears, earring, nose, mouth, lips) are kept.
PARSE_DROPPED: Final = (0, 14, 16, 17, 18)
PARSE_CLASSES: Final = 19
PARSE_BLUR: Final = ((101, 101), 11.0)  # Gaussian kernel and sigma, applied twice to the 0/255 mask
PARSE_BORDER: Final = 10  # px zeroed along each side of the blurred mask
DEFAULT_BATCH: Final = 4  # faces per GFPGAN forward

Restore = Callable[[Tensor], Tensor]  # (B, 3, 512, 512) RGB in [-1, 1] -> same shape, unclamped


class FaceDetector(Protocol):
    """What the enhancer needs from a detector (`lipsync_sadtalker.face_analysis.FaceAnalyzer` has it)."""

    def detect_faces(self, image_rgb: np.ndarray) -> list[DetectedFace]: ...


@dataclass(frozen=True)
class FoundFace:
    """One face to restore: its (2, 3) float64 image -> crop transform and the aligned uint8 RGB crop."""

    affine: np.ndarray
    crop: np.ndarray


def face_affine(points: np.ndarray) -> np.ndarray:
    """(2, 3) similarity transform taking five (x, y) face points onto `FFHQ_TEMPLATE_512` (LMEDS fit)."""
    affine, _ = cv2.estimateAffinePartial2D(
        np.asarray(points, dtype=np.float64), FFHQ_TEMPLATE_512, method=cv2.LMEDS
    )
    if affine is None:
        raise ValueError(f"no similarity transform fits the face points {np.asarray(points).tolist()}")
    return affine


def align_face(image_rgb: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The 512 x 512 face crop under ``affine`` (bilinear, grey outside the image)."""
    return cv2.warpAffine(
        image_rgb, affine, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_RGB
    )


def to_model_range(crops: Sequence[np.ndarray], device: torch.device) -> Tensor:
    """uint8 RGB crops -> (B, 3, H, W) float32 in [-1, 1], as GFPGANer's ``(x / 255 - 0.5) / 0.5``."""
    batch = (np.stack(crops) / 255.0).astype(np.float32)  # divided in float64 first, as upstream
    return ((torch.from_numpy(batch).to(device) - 0.5) / 0.5).permute(0, 3, 1, 2)


def from_model_range(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8: clamp, map to [0, 1], x 255, round (basicsr)."""
    unit = (images.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) / 2.0
    return (unit.permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)


def upscale_background(image_rgb: np.ndarray, upscale: int = UPSCALE) -> np.ndarray:
    """The frame resized ``upscale`` times with Lanczos, the background GFPGANer uses without an upsampler."""
    height, width = image_rgb.shape[:2]
    return cv2.resize(image_rgb, (width * upscale, height * upscale), interpolation=cv2.INTER_LANCZOS4)


def paste_transform(affine: np.ndarray, upscale: int = UPSCALE) -> np.ndarray:
    """Crop -> upscaled frame: the inverse of ``affine`` times ``upscale``, shifted by upscale / 2 px."""
    inverse = cv2.invertAffineTransform(affine) * upscale
    if upscale > 1:
        inverse[:, 2] += 0.5 * upscale
    return inverse


def rectangle_mask(
    inverse: np.ndarray, size_wh: tuple[int, int], upscale: int
) -> tuple[np.ndarray, np.ndarray]:
    """facexlib's mask without face parsing: (hard, soft) float32 (H, W) masks of the pasted face square.

    hard: the warped square eroded by ``2 x upscale`` px (drops the bilinear fringe); soft: ``hard`` eroded
    again by twice, then Gaussian-blurred over twice, a twentieth of the square's side.
    """
    warped = cv2.warpAffine(np.ones((FACE_SIZE, FACE_SIZE), np.float32), inverse, size_wh)
    hard = cv2.erode(warped, np.ones((2 * upscale, 2 * upscale), np.uint8))
    edge = int(np.sum(hard) ** 0.5) // 20  # float32 sum and root, as upstream
    if edge == 0:  # a face a few pixels wide: upstream's zero-sized kernels; keep the hard mask
        return hard, hard
    core = cv2.erode(hard, np.ones((2 * edge, 2 * edge), np.uint8))
    return hard, cv2.GaussianBlur(core, (2 * edge + 1, 2 * edge + 1), 0)


def parse_masks(parser: ParseNet, restored: Sequence[np.ndarray], device: torch.device) -> list[np.ndarray]:
    """facexlib's face-parsing paste masks: float64 (512, 512) in [0, 1], one per restored uint8 RGB crop.

    ParseNet labels each pixel; the face classes become 255, the rest 0; blurred twice (101 x 101, sigma 11),
    a 10 px border zeroed, divided by 255.
    """
    batch = np.stack(restored).astype(np.float32) / 255.0  # float32 division here, as upstream
    x = ((torch.from_numpy(batch).to(device) - 0.5) / 0.5).permute(0, 3, 1, 2)
    with torch.inference_mode():
        labels = parser(x).argmax(dim=1).cpu().numpy()
    keep = np.full(PARSE_CLASSES, 255.0)
    keep[list(PARSE_DROPPED)] = 0.0
    masks = []
    for face_labels in labels:
        mask = keep[face_labels]
        for _ in range(2):
            mask = cv2.GaussianBlur(mask, *PARSE_BLUR)
        mask[:PARSE_BORDER] = mask[-PARSE_BORDER:] = mask[:, :PARSE_BORDER] = mask[:, -PARSE_BORDER:] = 0
        masks.append(mask / 255.0)
    return masks


def paste_faces(
    image_rgb: np.ndarray,
    faces: Sequence[tuple[np.ndarray, np.ndarray]],
    upscale: int = UPSCALE,
    background: np.ndarray | None = None,
    masks: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Blend restored faces into the upscaled frame (facexlib ``paste_faces_to_input_image``).

    Args:
        image_rgb: the original (H, W, 3) uint8 frame.
        faces: (restored 512 x 512 uint8 crop, its image -> crop ``affine``) pairs, pasted in order.
        upscale: output scale.
        background: the upscaled frame to paste onto; default `upscale_background` of ``image_rgb``.
        masks: per face, a `parse_masks` mask (GFPGANer's default); ``None``: the rectangle mask.

    Returns:
        (H x upscale, W x upscale, 3) uint8; the float blend is truncated, as upstream.
    """
    out: np.ndarray = upscale_background(image_rgb, upscale) if background is None else background
    size_wh = (out.shape[1], out.shape[0])
    for index, (restored, affine) in enumerate(faces):
        inverse = paste_transform(affine, upscale)
        warped = cv2.warpAffine(restored, inverse, size_wh)
        if masks is None:
            hard, soft = rectangle_mask(inverse, size_wh, upscale)
            out = soft[:, :, None] * (hard[:, :, None] * warped) + (1 - soft[:, :, None]) * out
        else:  # upstream warps the parsing mask with flags=3 (INTER_AREA, which warpAffine does bilinearly)
            soft = cv2.warpAffine(masks[index], inverse, size_wh, flags=cv2.INTER_AREA)[:, :, None]
            out = soft * warped + (1 - soft) * out
    return out.astype(np.uint8)


def gfpgan_restorer(model: GFPGANv1Clean, generator: torch.Generator | None = None) -> Restore:
    """GFPGAN as a `Restore` function: fresh noise maps per face from ``generator``, no gradients."""

    def restore(faces: Tensor) -> Tensor:
        with torch.inference_mode():
            return model(faces, randomize_noise=True, generator=generator)

    return restore


class FaceEnhancer:
    """Restores every face of a frame with GFPGAN and returns the frame upscaled 2x.

    Args:
        restore: batched face restorer, e.g. `gfpgan_restorer`.
        detector: finds faces and their five points in RGB frames.
        device: where ``restore`` (and ``parser``) take their input.
        parser: ParseNet for facexlib's face-parsing paste mask (upstream's); ``None``: the rectangle mask.
        batch_size: faces per ``restore`` / ``parser`` call.
        upscale: output scale (SadTalker: 2).
    """

    def __init__(
        self,
        restore: Restore,
        detector: FaceDetector,
        device: torch.device | str = "cpu",
        *,
        parser: ParseNet | None = None,
        batch_size: int = DEFAULT_BATCH,
        upscale: int = UPSCALE,
    ) -> None:
        self.restore = restore
        self.detector = detector
        self.device = torch.device(device)
        self.parser = parser.to(self.device).eval() if parser is not None else None
        self.batch_size = max(1, batch_size)
        self.upscale = upscale
        self.noise: torch.Generator | None = None  # the restorer's noise source, when `from_files` made it

    @classmethod
    def from_files(
        cls,
        gfpgan_path: str | os.PathLike[str],
        device: torch.device | str,
        analyzer: FaceDetector,
        *,
        parsenet_path: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> FaceEnhancer:
        """Load ``GFPGANv1.4.pth`` and, if given, ``parsing_parsenet.pth`` (strict).

        ``seed`` fixes GFPGAN's noise maps (``None``: unseeded, as upstream).

        Raises:
            BackendError: ``weights_missing`` or ``bad_checkpoint`` (see `lipsync_kit.checkpoints`).
        """
        generator = torch.Generator()  # on the CPU: the same noise maps on every device
        if seed is not None:
            generator.manual_seed(seed)
        parser = (
            load_parsenet(parsenet_path, device) if parsenet_path is not None else None
        )  # the smaller file
        model = load_gfpgan(gfpgan_path, device)
        enhancer = cls(
            gfpgan_restorer(model, generator), analyzer, device, parser=parser, batch_size=batch_size
        )
        enhancer.noise = generator
        return enhancer

    def reseed(self, seed: int) -> None:
        """Restart the noise maps from ``seed`` (a render does this, so a seeded video repeats exactly)."""
        if self.noise is not None:
            self.noise.manual_seed(seed)

    def find_faces(self, image_rgb: np.ndarray) -> list[FoundFace]:
        """The faces GFPGANer would restore in ``image_rgb``, aligned, in detection order."""
        found = []
        for face in self.detector.detect_faces(image_rgb):
            points = np.asarray(face.points, dtype=np.float64)
            if np.linalg.norm(points[0] - points[1]) < EYE_DIST_THRESHOLD:
                continue
            try:
                affine = face_affine(points)
            except ValueError:  # degenerate points; upstream would crash in cv2.warpAffine
                continue
            found.append(FoundFace(affine, align_face(image_rgb, affine)))
        return found

    def restore_crops(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 RGB 512 x 512 crops -> restored uint8 crops, `batch_size` at a time."""
        restored: list[np.ndarray] = []
        for start in range(0, len(crops), self.batch_size):
            batch = to_model_range(crops[start : start + self.batch_size], self.device)
            restored.extend(from_model_range(self.restore(batch)))
        return restored

    def paste_masks(self, restored: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        """`parse_masks` of the restored crops, `batch_size` at a time; ``None`` without a parser."""
        if self.parser is None:
            return None
        masks: list[np.ndarray] = []
        for start in range(0, len(restored), self.batch_size):
            masks.extend(parse_masks(self.parser, restored[start : start + self.batch_size], self.device))
        return masks

    def enhance(self, frame_rgb: np.ndarray) -> np.ndarray:
        """One (H, W, 3) uint8 RGB frame -> (2H, 2W, 3) uint8 RGB with its faces restored."""
        return self.enhance_frames([frame_rgb])[0]

    def enhance_frames(self, frames_rgb: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Several frames; their faces share batches. A frame without faces is only upscaled."""
        found = [self.find_faces(frame) for frame in frames_rgb]
        restored = self.restore_crops([face.crop for faces in found for face in faces])
        masks = self.paste_masks(restored)
        results, start = [], 0
        for frame, faces in zip(frames_rgb, found, strict=True):
            end = start + len(faces)
            pairs = [(crop, face.affine) for crop, face in zip(restored[start:end], faces, strict=True)]
            results.append(
                paste_faces(frame, pairs, self.upscale, masks=None if masks is None else masks[start:end])
            )
            start = end
        return results
