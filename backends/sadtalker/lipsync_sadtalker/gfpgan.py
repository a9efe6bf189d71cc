"""GFPGAN v1.4 face restorer, the "clean" architecture (Wang et al., "Towards Real-World Blind Face
Restoration with Generative Facial Prior", CVPR 2021), as SadTalker's ``--enhancer gfpgan`` builds it.

Matches ``GFPGANv1Clean`` of the gfpgan package (``gfpgan/archs/gfpganv1_clean_arch.py`` and
``stylegan2_clean_arch.py``, Apache-2.0) with ``GFPGANer``'s arguments: out_size 512, 512 style features,
channel multiplier 2, 8 style-MLP layers (present but unused: ``input_is_latent``), a different latent per
layer, narrow 1, SFT on half of the channels. Module names equal the keys of the ``params_ema`` entry of
``GFPGANv1.4.pth``, so it loads with ``strict=True``.

A U-Net encoder (bilinear down/up residual blocks) gives a 16 x 512 latent and, per resolution 8..512, an
SFT scale and shift; a StyleGAN2 decoder (modulated convs, noise injection, to-RGB skips) renders the face,
with the SFT applied to the second half of the channels after each upsampling conv. In and out: RGB in
[-1, 1], (B, 3, 512, 512).

Also here: facexlib's ParseNet (`ParseNet`, ``parsing_parsenet.pth``), whose face-parsing labels make the mask
GFPGANer pastes restored faces back with.
"""

from __future__ import annotations

import math
import os
from typing import Final

import torch
import torch.nn.functional as F
from lipsync_kit.checkpoints import load_into, load_state_dict_file
from lipsync_kit.errors import BackendError, ErrorCode
from torch import Tensor, nn

__all__ = [
    "FACE_SIZE",
    "GFPGANv1Clean",
    "ModulatedConv2d",
    "ParseNet",
    "StyleConv",
    "StyleGAN2DecoderSFT",
    "ToRGB",
    "load_gfpgan",
    "load_parsenet",
]

FACE_SIZE: Final = 512
STYLE_DIM: Final = 512
NUM_MLP: Final = 8
CHANNEL_MULTIPLIER: Final = 2
SLOPE: Final = 0.2  # leaky ReLU slope everywhere
DEMOD_EPS: Final = 1e-8


def decoder_channels(resolution: int, multiplier: int = CHANNEL_MULTIPLIER, narrow: float = 1.0) -> int:
    """StyleGAN2's width at ``resolution``: 512 up to 32 px, then 256·m at 64 px halving per octave."""
    base = 512 if resolution <= 32 else 256 * multiplier * 64 // resolution
    return int(base * narrow)


def _up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _down(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated conv without bias: per-sample weights scaled by an affine map of the style."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, demodulate: bool = True, upsample: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, out_ch, in_ch, kernel, kernel))
        self.modulation = nn.Linear(STYLE_DIM, in_ch)
        self.demodulate = demodulate
        self.upsample = upsample

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        batch, in_ch = x.shape[:2]
        weight = self.weight * self.modulation(style).view(batch, 1, in_ch, 1, 1)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4)) + DEMOD_EPS)[..., None, None, None]
        out_ch, kernel = weight.shape[1], weight.shape[-1]
        if self.upsample:
            x = _up(x)
        height, width = x.shape[2:]
        out = F.conv2d(
            x.reshape(1, batch * in_ch, height, width),
            weight.reshape(batch * out_ch, in_ch, kernel, kernel),
            padding=kernel // 2,
            groups=batch,
        )
        return out.view(batch, out_ch, *out.shape[2:])


class StyleConv(nn.Module):
    """Modulated 3x3 conv (x sqrt 2), scaled noise, bias, leaky ReLU; ``weight`` is the noise strength."""

    def __init__(self, in_ch: int, out_ch: int, upsample: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))
        self.modulated_conv = ModulatedConv2d(in_ch, out_ch, 3, upsample=upsample)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor) -> Tensor:
        out = self.modulated_conv(x, style) * math.sqrt(2.0)
        return F.leaky_relu(out + self.weight * noise + self.bias, SLOPE)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (no demodulation) plus bias, added to the upsampled previous RGB."""

    def __init__(self, in_ch: int, upsample: bool = True) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.modulated_conv = ModulatedConv2d(in_ch, 3, 1, demodulate=False)
        self.upsample = upsample

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is None:
            return out
        return out + (_up(skip) if self.upsample else skip)


class ConstantInput(nn.Module):
    """The learnt 4x4 start tensor."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.weight.expand(batch, -1, -1, -1)


class StyleGAN2DecoderSFT(nn.Module):
    """StyleGAN2 "clean" generator fed with one latent per layer and SFT conditions per resolution.

    ``style_mlp`` (pixel norm + 8 linear layers) is kept for the checkpoint keys; GFPGAN feeds latents.
    ``noises.noise{i}`` are stored noise maps, used when ``randomize_noise`` is off.
    """

    def __init__(self, out_size: int = FACE_SIZE, num_mlp: int = NUM_MLP) -> None:
        super().__init__()
        mlp: list[nn.Module] = [nn.Identity()]  # index 0: upstream's parameter-free pixel norm
        for _ in range(num_mlp):
            mlp += [nn.Linear(STYLE_DIM, STYLE_DIM), nn.LeakyReLU(SLOPE)]
        self.style_mlp = nn.Sequential(*mlp)
        self.log_size = int(math.log2(out_size))
        self.num_layers = 2 * (self.log_size - 2) + 1
        self.num_latent = 2 * self.log_size - 2
        width = decoder_channels(4)
        self.constant_input = ConstantInput(width)
        self.style_conv1 = StyleConv(width, width)
        self.to_rgb1 = ToRGB(width, upsample=False)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for index in range(self.num_layers):
            side = 2 ** ((index + 5) // 2)
            self.noises.register_buffer(f"noise{index}", torch.zeros(1, 1, side, side))
        for level in range(3, self.log_size + 1):
            out_ch = decoder_channels(2**level)
            self.style_convs.append(StyleConv(width, out_ch, upsample=True))
            self.style_convs.append(StyleConv(out_ch, out_ch))
            self.to_rgbs.append(ToRGB(out_ch))
            width = out_ch

    def layer_noise(self, batch: int, randomize: bool, generator: torch.Generator | None) -> list[Tensor]:
        """One noise map per style conv: fresh N(0, 1) per sample, or the stored maps."""
        stored = [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]
        if not randomize:
            return stored
        source = generator.device if generator is not None else stored[0].device
        return [
            torch.randn((batch, 1, *n.shape[2:]), generator=generator, device=source, dtype=n.dtype).to(
                n.device
            )
            for n in stored
        ]

    def forward(self, latent: Tensor, conditions: list[Tensor], noise: list[Tensor]) -> Tensor:
        """latent (B, num_latent, 512); conditions [scale, shift] per resolution 8..; returns RGB."""
        out = self.style_conv1(self.constant_input(latent.shape[0]), latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        for level, to_rgb in enumerate(self.to_rgbs):
            i = 2 * level + 1
            out = self.style_convs[2 * level](out, latent[:, i], noise[i])
            if 2 * level + 1 < len(conditions):
                same, sft = out.split(out.shape[1] // 2, dim=1)
                out = torch.cat([same, sft * conditions[2 * level] + conditions[2 * level + 1]], dim=1)
            out = self.style_convs[2 * level + 1](out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
        return skip


class ResBlock(nn.Module):
    """conv3x3, leaky ReLU, bilinear x2 or x0.5, conv3x3, leaky ReLU; plus a resampled 1x1 skip."""

    def __init__(self, in_ch: int, out_ch: int, upsample: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.resample = _up if upsample else _down

    def forward(self, x: Tensor) -> Tensor:
        out = F.leaky_relu(self.conv1(x), SLOPE)
        out = F.leaky_relu(self.conv2(self.resample(out)), SLOPE)
        return out + self.skip(self.resample(x))


def _sft_branch(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.LeakyReLU(SLOPE),
        nn.Conv2d(channels, channels, 3, padding=1),
    )


class GFPGANv1Clean(nn.Module):
    """U-Net encoder + SFT-conditioned StyleGAN2 decoder: degraded face -> restored face, RGB in [-1, 1].

    ``toRGB`` (the U-Net's auxiliary RGB heads, used only in training) is kept for the checkpoint keys.
    """

    def __init__(self, out_size: int = FACE_SIZE) -> None:
        super().__init__()
        self.log_size = int(math.log2(out_size))
        levels = range(3, self.log_size + 1)

        def unet(resolution: int) -> int:
            return decoder_channels(resolution, narrow=0.5)

        width = unet(out_size)
        self.conv_body_first = nn.Conv2d(3, width, 1)
        self.conv_body_down = nn.ModuleList()
        for level in range(self.log_size, 2, -1):
            self.conv_body_down.append(ResBlock(width, unet(2 ** (level - 1)), upsample=False))
            width = unet(2 ** (level - 1))
        self.final_conv = nn.Conv2d(width, unet(4), 3, padding=1)
        width = unet(4)
        self.conv_body_up = nn.ModuleList()
        for level in levels:
            self.conv_body_up.append(ResBlock(width, unet(2**level), upsample=True))
            width = unet(2**level)
        self.toRGB = nn.ModuleList(nn.Conv2d(unet(2**level), 3, 1) for level in levels)
        self.num_latent = 2 * self.log_size - 2
        self.final_linear = nn.Linear(unet(4) * 16, self.num_latent * STYLE_DIM)
        self.stylegan_decoder = StyleGAN2DecoderSFT(out_size)
        self.condition_scale = nn.ModuleList(_sft_branch(unet(2**level)) for level in levels)
        self.condition_shift = nn.ModuleList(_sft_branch(unet(2**level)) for level in levels)

    def forward(
        self, x: Tensor, randomize_noise: bool = True, generator: torch.Generator | None = None
    ) -> Tensor:
        """(B, 3, 512, 512) RGB in [-1, 1] -> restored (B, 3, 512, 512), unclamped.

        Args:
            randomize_noise: fresh Gaussian noise maps per call (upstream's inference default); off: the
                stored ``noises.noise*`` maps (deterministic).
            generator: the random source for the fresh noise maps (``None``: torch's global generator).
        """
        feat = F.leaky_relu(self.conv_body_first(x), SLOPE)
        skips: list[Tensor] = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.insert(0, feat)
        feat = F.leaky_relu(self.final_conv(feat), SLOPE)
        latent = self.final_linear(feat.flatten(1)).view(x.shape[0], self.num_latent, STYLE_DIM)
        conditions: list[Tensor] = []
        for skip, up, scale, shift in zip(
            skips, self.conv_body_up, self.condition_scale, self.condition_shift, strict=True
        ):
            feat = up(feat + skip)
            conditions += [scale(feat), shift(feat)]
        noise = self.stylegan_decoder.layer_noise(x.shape[0], randomize_noise, generator)
        return self.stylegan_decoder(latent, conditions, noise)


def load_gfpgan(
    path: str | os.PathLike[str], device: torch.device | str = "cpu", out_size: int = FACE_SIZE
) -> GFPGANv1Clean:
    """``GFPGANv1.4.pth``: its ``params_ema`` entry (``params`` if there is none, as GFPGANer), strict, eval.

    Raises:
        BackendError: ``weights_missing`` or ``bad_checkpoint`` (see `lipsync_kit.checkpoints`).
    """
    try:
        state = load_state_dict_file(path, section="params_ema")
    except BackendError as err:
        if err.code != ErrorCode.BAD_CHECKPOINT:
            raise
        state = load_state_dict_file(path, section="params")
    model = GFPGANv1Clean(out_size)
    load_into(model, state, source=str(path))
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------- ParseNet


class _NormHolder(nn.Module):
    """Gives the batch norm the checkpoint's ``norm.norm.*`` key path."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)


class ParseConv(nn.Module):
    """Reflection pad 1, 3x3 conv (stride 2 for ``down``; nearest x2 before it for ``up``), BN, leaky ReLU."""

    def __init__(
        self, in_ch: int, out_ch: int, scale: str = "none", batch_norm: bool = False, activate: bool = False
    ) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(in_ch, out_ch, 3, stride=2 if scale == "down" else 1, bias=not batch_norm)
        self.norm = _NormHolder(out_ch) if batch_norm else None
        self.upsample = scale == "up"
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        out = self.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        if self.norm is not None:
            out = self.norm.norm(out)
        return F.leaky_relu(out, SLOPE) if self.activate else out


class ParseBlock(nn.Module):
    """Residual block: conv-BN-leaky ReLU, conv-BN; a plain conv shortcut when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, scale: str = "none") -> None:
        super().__init__()
        changes = scale != "none" or in_ch != out_ch
        self.shortcut_func = ParseConv(in_ch, out_ch, scale) if changes else None
        self.conv1 = ParseConv(
            in_ch, out_ch, "up" if scale == "up" else "none", batch_norm=True, activate=True
        )
        self.conv2 = ParseConv(out_ch, out_ch, "down" if scale == "down" else "none", batch_norm=True)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.shortcut_func is None else self.shortcut_func(x)
        return identity + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    """facexlib's ParseNet (from PSFRGAN) for 512 x 512 faces: 19-class face parsing logits.

    Matches ``facexlib.parsing.parsenet.ParseNet(in_size=512, out_size=512, parsing_ch=19)`` (MIT); module
    names equal the keys of ``parsing_parsenet.pth`` (a bare state dict). Encoder 512 -> 32 px (64..256
    channels), 10 residual blocks, decoder back to 512 px; the image head is kept for the keys only.
    """

    def __init__(self, size: int = FACE_SIZE, classes: int = 19, depth: int = 10) -> None:
        super().__init__()

        def clip(channels: int) -> int:
            return max(32, min(channels, 256))

        steps = int(math.log2(size // 32))
        head = 64
        encoder: list[nn.Module] = [ParseConv(3, head)]
        for _ in range(steps):
            encoder.append(ParseBlock(clip(head), clip(head * 2), "down"))
            head *= 2
        self.encoder = nn.Sequential(*encoder)
        self.body = nn.Sequential(*(ParseBlock(clip(head), clip(head)) for _ in range(depth)))
        decoder = []
        for _ in range(steps):
            decoder.append(ParseBlock(clip(head), clip(head // 2), "up"))
            head //= 2
        self.decoder = nn.Sequential(*decoder)
        self.out_img_conv = ParseConv(clip(head), 3)
        self.out_mask_conv = ParseConv(clip(head), classes)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, 512, 512) RGB in [-1, 1] -> (B, 19, 512, 512) class logits."""
        feat = self.encoder(x)
        return self.out_mask_conv(self.decoder(feat + self.body(feat)))


def load_parsenet(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> ParseNet:
    """``parsing_parsenet.pth`` (strict), in eval mode.

    Raises:
        BackendError: ``weights_missing`` or ``bad_checkpoint`` (see `lipsync_kit.checkpoints`).
    """
    model = ParseNet()
    load_into(model, load_state_dict_file(path), source=str(path))
    return model.to(device).eval()
