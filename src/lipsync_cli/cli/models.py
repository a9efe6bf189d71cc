"""``lipsync models``: the catalogue with the state of each model's env and weights."""

from __future__ import annotations

from ..catalogue import MODELS, SYNCNET_DETECTOR, SYNCNET_FILE, model_weight_files, weight_file
from ..envs import BackendEnv
from ..output import emit, print_table
from ..weights import WeightsStore
from .options import JsonOpt


def list_models(json_: JsonOpt = False) -> None:
    """List the models, their backend environment and their weight files."""
    store = WeightsStore()
    rows = []
    for model in MODELS.values():
        env = BackendEnv.named(model.backend)
        files = {wf.name: store.status(wf) for wf in model_weight_files(model)}
        licenses = sorted({wf.license for wf in model_weight_files(model) if wf.license})
        rows.append(
            {
                "model": model.name,
                "backend": model.backend,
                "env": env.status(),
                "weights": files,
                "licenses": licenses,
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
        emit("models", {"models": rows, "metrics": [syncnet]}, json_mode=True)
        return
    table = []
    for model, row in zip(MODELS.values(), rows, strict=True):
        needed = [wf.name for wf in model_weight_files(model, every_checkpoint=False)]
        present = sum(row["weights"][name] == "ok" for name in needed)
        weights = f"{present}/{len(needed)} present" + (
            "" if present == len(needed) else f" (lipsync weights fetch {model.name})"
        )
        table.append((row["model"], f"{row['backend']} ({row['env']})", weights, row["description"]))
    print_table(("model", "backend env", "weights (default files)", "description"), table)
    emit(
        "models",
        {},
        json_mode=False,
        lines=[
            f"lipsync eval: {syncnet['description']}; env {syncnet['env']}; {SYNCNET_FILE.name} "
            f"{syncnet['weights'][SYNCNET_FILE.name]} (unverified: no published sha256). "
            + SYNCNET_FILE.license
        ],
    )
