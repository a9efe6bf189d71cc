"""Write stand-in checkpoints in the official file formats (run with a backend env's Python).

    python make_standin_checkpoints.py OUT_DIR SCHEMA_DIR

Writes ``wav2lip_standin.pth`` (the training container ``{state_dict, optimizer, global_step,
global_epoch}`` with ``module.``-prefixed keys, like the released wav2lip.pth) and
``s3fd_standin.pth`` (a bare state dict, like s3fd-619a316812.pth), and ``s3fd_blind.pth``: the
stand-in detector with its classification heads set so that no position ever scores as a face.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standin import standin_state_dict


def main(out_dir: Path, schema_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = standin_state_dict(schema_dir / "schema_wav2lip.json")
    container = {
        "state_dict": {f"module.{key}": value for key, value in generator.items()},
        "optimizer": None,
        "global_step": 0,
        "global_epoch": 0,
    }
    torch.save(container, out_dir / "wav2lip_standin.pth")
    detector = standin_state_dict(schema_dir / "schema_s3fd.json")
    torch.save(detector, out_dir / "s3fd_standin.pth")
    torch.save(blind(detector), out_dir / "s3fd_blind.pth")


def blind(detector: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Zero every confidence head and bias it hard towards background (the face channel is the last)."""
    out = dict(detector)
    for key in [k for k in detector if "_mbox_conf" in k]:
        if key.endswith("weight"):
            out[key] = torch.zeros_like(detector[key])
        else:
            bias = torch.full_like(detector[key], 20.0)
            bias[-1] = -20.0
            out[key] = bias
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
