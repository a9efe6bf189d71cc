"""``lipsync models``: the catalogue with the state of each model's env and weights."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..catalogue import MODELS, SYNCNET_DETECTOR, SYNCNET_FILE, model_weight_files, weight_file
from ..envs import BackendEnv
from ..output import print_json
from ..weights import WeightsStore
from .options import JsonOpt


def list_models(json_: JsonOpt = False) -> None:
    """List the models, their backend environment and their weight files."""
    store = WeightsStore()
    rows = []
    for model in MODELS.values():
        env = BackendEnv.named(model.backend)
        files = {wf.name: store.status(wf) for wf in model_weight_files(model)}
        rows.append(
            {
                "model": model.name,
                "backend": model.backend,
                "env": env.status(),
                "weights": files,
                "description": model.description,
            }
        )
    syncnet = {
        "metric": "syncnet",
        "command": "lipsync eval",
        "backend": "syncnet",
        "env": BackendEnv.named("syncnet").status(),
        "weights": {
            SYNCNET_FILE.name: "present" if (store.root / SYNCNET_FILE.name).is_file() else "missing",
            SYNCNET_DETECTOR: store.status(weight_file(SYNCNET_DETECTOR)),
        },
        "description": SYNCNET_FILE.description,
        "license": SYNCNET_FILE.license,
    }
    if json_:
        print_json("models", {"models": rows, "metrics": [syncnet]})
        return
    table = Table("model", "backend env", "weights (default files)", "description", box=None)
    for model, row in zip(MODELS.values(), rows, strict=True):
        needed = [wf.name for wf in model_weight_files(model, every_checkpoint=False)]
        present = sum(row["weights"][name] == "ok" for name in needed)
        weights = f"{present}/{len(needed)} present" + (
            "" if present == len(needed) else f" (lipsync weights fetch {model.name})"
        )
        table.add_row(row["model"], f"{row['backend']} ({row['env']})", weights, row["description"])
    Console().print(table)
    Console().print(
        f"lipsync eval: {syncnet['description']}; env {syncnet['env']}; {SYNCNET_FILE.name} "
        f"{syncnet['weights'][SYNCNET_FILE.name]} (unverified: no published sha256). {SYNCNET_FILE.license}",
        soft_wrap=True,
    )
