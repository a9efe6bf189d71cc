"""Write stand-in SyncNet weights in the official formats (run with the syncnet env's Python).

    python make_syncnet_standins.py OUT_DIR SCHEMA_DIR

Writes ``syncnet_v2.model`` (a bare state dict under the ``S`` keys, as the released file) and
``sfd_face.pth`` (syncnet_python's detector layout, ``vgg.N`` ...), both from tests/backends/standin.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from standin import standin_state_dict


def main(out_dir: Path, schema_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(standin_state_dict(schema_dir / "schema_syncnet.json"), out_dir / "syncnet_v2.model")
    torch.save(standin_state_dict(schema_dir / "schema_sfd_face.json"), out_dir / "sfd_face.pth")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
