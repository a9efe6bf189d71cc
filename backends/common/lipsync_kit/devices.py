"""Turn a ``--device`` value into a torch device, with a clear error when it cannot be used."""

from __future__ import annotations

import re

import torch

from .errors import BackendError
from .protocol import ErrorCode

__all__ = ["resolve_device", "warm_up"]

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; explicit devices are checked to exist."""
    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise BackendError(ErrorCode.DEVICE_UNAVAILABLE, "--device mps: Apple MPS is not available here")
        return torch.device("mps")
    if match := _CUDA.fullmatch(spec):
        if not torch.cuda.is_available():
            raise BackendError(
                ErrorCode.DEVICE_UNAVAILABLE,
                f"--device {spec}: CUDA is not available (torch {torch.__version__}, no GPU or driver found)",
                hint="use --device cpu, or check nvidia-smi",
            )
        index = int(match.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise BackendError(
                ErrorCode.DEVICE_UNAVAILABLE,
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present",
            )
        return torch.device("cuda", index)
    raise BackendError(
        ErrorCode.BAD_OPTION, f"unknown device {spec!r}", hint="auto, cpu, cuda, cuda:N or mps"
    )


def warm_up(device: torch.device) -> None:
    """Create the CUDA context and cuDNN handle now (about a second), so the first render does not wait.

    The worker runs this in a background thread right after ``ready``, while the host sends the request
    and the backend decodes its inputs and reads its weights. Harmless on other devices.
    """
    if device.type != "cuda":
        return
    with torch.inference_mode():
        image = torch.zeros((1, 3, 16, 16), device=device)
        kernel = torch.zeros((4, 3, 3, 3), device=device)
        torch.nn.functional.conv2d(image, kernel)
        torch.cuda.synchronize(device)
