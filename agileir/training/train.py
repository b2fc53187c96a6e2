"""A small, resumable trainer for the toolkit's reference weights (L1/Charbonnier, Adam, cosine, EMA)."""
from __future__ import annotations

import copy
import json
import math
import os
import platform
import random
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..io.atomic import atomic_path
from ..quality.evaluation import evaluate
from ..models.config import SRConfig
from ..models.network import build_model
from .data import PairedPatches


@dataclass
class TrainConfig:
    model: dict  # SRConfig.to_dict()
    train_dir: str
    val_dir: str | None
    out_dir: str
    steps: int = 2000
    batch: int = 8
    lr_patch: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: int = 50
    loss: str = "l1"  # or "charbonnier"
    ema_decay: float = 0.999
    val_every: int = 250
    save_every: int = 100
    seed: int = 0
    threads: int = 0  # 0: torch default


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "charbonnier":
        return torch.sqrt((sr - hr) ** 2 + 1e-6).mean()
    return (sr - hr).abs().mean()


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    # Warm-up of the decay so a short run's EMA is not dominated by the random initialisation.
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.mul_(d).add_(p, alpha=1 - d)
        else:
            e.copy_(p)


def model_upscaler(model: torch.nn.Module):
    def upscale(rgb: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
        with torch.no_grad():
            return model(x)[0].permute(1, 2, 0).clamp(0, 1).numpy()
    return upscale


def train(cfg: TrainConfig) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = SRConfig.from_dict(cfg.model)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_model(config)
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed)
    state = {"step": 0, "wall_s": 0.0, "history": []}

    ckpt = out / "last.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=True)
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        opt.load_state_dict(saved["optim"])
        gen.set_state(saved["generator"])
        state = json.loads(saved["state"])
        print(f"resumed from {ckpt} at step {state['step']}")

    data = PairedPatches(cfg.train_dir, config.scale, cfg.lr_patch)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))

    def save():
        with atomic_path(ckpt) as tmp:
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "optim": opt.state_dict(),
                        "generator": gen.get_state(), "state": json.dumps(state)}, tmp)

    stop = {"requested": False}

    def request_stop(signum, frame):  # SIGTERM/SIGINT: finish the step, save, write the summary
        stop["requested"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)

    model.train()
    bar = tqdm(range(state["step"], cfg.steps), initial=state["step"], total=cfg.steps, desc="train")
    t0 = time.time()
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        lr_img, hr_img = data.sample(cfg.batch, gen)
        loss = pixel_loss(model(lr_img), hr_img, cfg.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(ema, model, step, cfg.ema_decay)
        state["step"] = step + 1
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr_at(step, cfg):.1e}")
        done = step + 1
        if cfg.val_dir and (done % cfg.val_every == 0 or done == cfg.steps):
            res = evaluate(model_upscaler(ema), cfg.val_dir, config.scale).summary()
            state["history"].append({"step": done, **res})
            tqdm.write(f"step {done}: {Path(cfg.val_dir).name} PSNR {res['psnr']:.3f} "
                       f"(bicubic {res['bicubic_psnr']:.3f}) SSIM {res['ssim']:.4f}")
        if done % cfg.save_every == 0 or done == cfg.steps or stop["requested"]:
            state["wall_s"] += time.time() - t0
            t0 = time.time()
            save()
        if stop["requested"]:
            tqdm.write(f"stopped on request after step {done}")
            break
    if not stop["requested"]:
        state["wall_s"] += time.time() - t0
        save()
    torch.save(ema.state_dict(), out / "ema.pt")
    meta = {"config": config.to_dict(), "train": asdict(cfg), "steps": state["step"],
            "wall_s": round(state["wall_s"], 1), "history": state["history"],
            "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"}
    (out / "summary.json").write_text(json.dumps(meta, indent=2))
    return meta
