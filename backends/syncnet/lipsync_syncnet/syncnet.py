"""SyncNet, the audio-visual sync network (Chung & Zisserman, "Out of time: automated lip sync in the wild").

Matches the ``S`` network of joonson/syncnet_python ``SyncNetModel.py``: module names are the keys of
``syncnet_v2.model`` (``netcnnaud``, ``netfcaud``, ``netcnnlip``, ``netfclip`` with their Sequential
indices), so the file loads with ``strict=True`` and no remapping. Two streams embed 0.2 s of speech
(13 MFCCs x 20 steps) and 5 mouth-crop frames into the same 1024-d space; sync is their L2 distance.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from torch import Tensor, nn

__all__ = ["EMBEDDING_DIM", "SyncNet"]

EMBEDDING_DIM: Final = 1024

# (out channels, kernel, stride, padding, pool after it as (kernel, stride, padding) or None)
_AUDIO_CONVS: Final = (
    (64, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1), (0, 0))),  # a 1x1 max-pool: the identity, kept for indices
    (192, (3, 3), (1, 1), (1, 1), ((3, 3), (1, 2), (0, 0))),
    (384, (3, 3), (1, 1), (1, 1), None),
    (256, (3, 3), (1, 1), (1, 1), None),
    (256, (3, 3), (1, 1), (1, 1), ((3, 3), (2, 2), (0, 0))),
    (512, (5, 4), (1, 1), (0, 0), None),
)
_LIP_CONVS: Final = (
    (96, (5, 7, 7), (1, 2, 2), (0, 0, 0), ((1, 3, 3), (1, 2, 2), (0, 0, 0))),
    (256, (1, 5, 5), (1, 2, 2), (0, 1, 1), ((1, 3, 3), (1, 2, 2), (0, 1, 1))),
    (256, (1, 3, 3), (1, 1, 1), (0, 1, 1), None),
    (256, (1, 3, 3), (1, 1, 1), (0, 1, 1), None),
    (256, (1, 3, 3), (1, 1, 1), (0, 1, 1), ((1, 3, 3), (1, 2, 2), (0, 0, 0))),
    (512, (1, 6, 6), (1, 1, 1), (0, 0, 0), None),
)


def _conv_stack(specs: tuple, in_ch: int, dims: int) -> nn.Sequential:
    """Conv, BatchNorm, ReLU (and max-pool) per spec, flat in one Sequential as the checkpoint indexes it."""
    if dims == 2:
        conv, norm, pool = nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d
    else:
        conv, norm, pool = nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d  # type: ignore[assignment]

    def layers() -> Iterator[nn.Module]:
        channels = in_ch
        for out_ch, kernel, stride, padding, pooling in specs:
            yield conv(channels, out_ch, kernel_size=kernel, stride=stride, padding=padding)
            yield norm(out_ch)
            yield nn.ReLU(inplace=True)
            if pooling is not None:
                yield pool(kernel_size=pooling[0], stride=pooling[1], padding=pooling[2])
            channels = out_ch

    return nn.Sequential(*layers())


def _head() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, EMBEDDING_DIM)
    )


class SyncNet(nn.Module):
    """The two SyncNet streams; ``forward_aud`` and ``forward_lip`` embed one window each per batch row."""

    def __init__(self) -> None:
        super().__init__()
        self.netcnnaud = _conv_stack(_AUDIO_CONVS, 1, dims=2)
        self.netfcaud = _head()
        self.netfclip = _head()
        self.netcnnlip = _conv_stack(_LIP_CONVS, 3, dims=3)

    def forward_aud(self, mfcc: Tensor) -> Tensor:
        """(B, 1, 13, 20) float32 MFCC windows -> (B, 1024) audio embeddings."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, frames: Tensor) -> Tensor:
        """(B, 3, 5, 224, 224) float32 BGR crops in [0, 255] (not normalised) -> (B, 1024) lip embeddings."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))
