"""Turn a training run into bundled weights plus a model card with measured benchmark numbers.

    python -m agileir.training.bundle RUN_DIR NAME [--benchmarks DIR]

Writes agileir/weights/NAME.safetensors (FP16 storage: the bundle must stay small; the FP32 reference
is these weights upcast) and NAME.json, the model card.
"""
from __future__ import annotations

import json
import platform
from datetime import date
from pathlib import Path

import click
import torch

from ..quality.evaluation import evaluate
from ..models.config import SRConfig, preset_name
from ..models.load import WEIGHTS_DIR, file_sha256, load_model, save_safetensors
from ..models.network import build_model
from .train import model_upscaler


def card_for(run_dir: Path, weights: Path, benchmarks: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    loaded = load_model(weights)
    config = loaded.config
    scores = {}
    for name in ("Set5", "Set14"):
        if (benchmarks / name).is_dir():
            result = evaluate(model_upscaler(loaded.model), benchmarks / name, config.scale)
            scores[name] = {k: round(v, 4) for k, v in result.summary().items()}
            click.echo(f"{name} x{config.scale}: PSNR {scores[name]['psnr']:.3f} "
                       f"(bicubic {scores[name]['bicubic_psnr']:.3f}) SSIM {scores[name]['ssim']:.4f}")
    train = summary["train"]
    return {
        "name": weights.stem,
        "what": "agileir toolkit reference weights trained on BSD100 HR images -- NOT the AgileIR paper's "
                "weights (none are published)",
        "architecture": config.arch, "preset": preset_name(config), "config": config.to_dict(),
        "parameters": loaded.model.num_parameters(),
        "storage": "float16 safetensors", "sha256": file_sha256(weights),
        "data": {"train": "BSD100_HR (100 images), LR made on the fly by MATLAB-exact bicubic",
                 "validation": "Set5 during training; Set5/Set14 below (never trained on)"},
        "recipe": {k: train[k] for k in ("steps", "batch", "lr_patch", "lr", "min_lr", "warmup", "loss",
                                         "ema_decay", "seed")},
        "steps_done": summary["steps"], "wall_time_s": summary["wall_s"], "hardware": summary["hardware"],
        "benchmarks": {"protocol": f"PSNR/SSIM on Y (BT.601), border crop = scale {config.scale}, "
                                   "BasicSR formulas; bicubic = MATLAB imresize of the LR image",
                       **scores},
        "history": summary.get("history", []),
        "date": date.today().isoformat(), "torch": torch.__version__, "machine": platform.machine(),
    }


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.option("--benchmarks", default="../shared/data/benchmarks", show_default=True,
              type=click.Path(file_okay=False))
def main(run_dir, name, benchmarks):
    """Bundle RUN_DIR's EMA weights as agileir/weights/NAME.safetensors with a model card."""
    run = Path(run_dir)
    summary = json.loads((run / "summary.json").read_text())
    model = build_model(SRConfig.from_dict(summary["config"]))
    model.load_state_dict(torch.load(run / "ema.pt", weights_only=True))
    weights = WEIGHTS_DIR / f"{name}.safetensors"
    save_safetensors(model, weights, half=True)
    card = card_for(run, weights, Path(benchmarks))
    (WEIGHTS_DIR / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    click.echo(f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB) and {name}.json")


if __name__ == "__main__":
    main()
