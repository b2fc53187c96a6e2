"""python -m agileir.training --preset agileir-light-x4 --train-dir DIR --val-dir DIR --out runs/x4"""
from __future__ import annotations

import click

from ..models.config import preset
from .train import TrainConfig, train


@click.command()
@click.option("--preset", "preset_name", required=True, help="model preset, e.g. agileir-light-x4")
@click.option("--train-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--val-dir", type=click.Path(exists=True, file_okay=False), help="BasicSR-layout dataset")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--steps", default=2000, show_default=True)
@click.option("--batch", default=8, show_default=True)
@click.option("--lr-patch", default=32, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--loss", type=click.Choice(["l1", "charbonnier"]), default="l1", show_default=True)
@click.option("--val-every", default=250, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=0, help="torch CPU threads (0: default)")
def main(preset_name, train_dir, val_dir, out_dir, steps, batch, lr_patch, lr, loss, val_every, seed, threads):
    """Train reference weights from HR images (LR made on the fly by MATLAB-exact bicubic)."""
    cfg = TrainConfig(model=preset(preset_name).to_dict(), train_dir=train_dir, val_dir=val_dir,
                      out_dir=out_dir, steps=steps, batch=batch, lr_patch=lr_patch, lr=lr, loss=loss,
                      val_every=val_every, seed=seed, threads=threads)
    summary = train(cfg)
    click.echo(f"done: {summary['steps']} steps in {summary['wall_s']:.0f}s")


if __name__ == "__main__":
    main()
