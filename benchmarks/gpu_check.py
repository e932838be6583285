"""Does the CUDA path give the CPU's tiles, and how fast are sampling and training on one GPU?

Run: ``python benchmarks/gpu_check.py [--quick] [--json PATH]``. Prints a table and writes
JSON (default ``benchmarks/results/gpu_check.json``). Needs torch, diffusers, numpy, scipy,
pyyaml and safetensors only (no Ray, astropy or zarr), so it runs on a bare GPU box; the
numbers are those of the model code the sampler actors and training workers run.

1. **Agreement**: the shipped demo model samples the same objects (real masks from the
   shipped bank, noise backgrounds, the map's default solver and guidance) on CPU and on
   CUDA; tiles are compared, and the CUDA tiles of one batch against the same objects in
   batches of 8 (a tile must not depend on its batch).
2. **Sampling throughput** (tiles/s, peak GPU memory) of the demo and the paper-size models
   (random weights: speed does not depend on them) in fp32, fp32 with TF32 matmuls, and
   bf16 autocast; bf16's effect on the demo's tiles is reported as a mean |difference|.
3. **Training throughput** (samples/s) of the paper-size autoencoder and LDM steps, with
   and without the training job's bf16 autocast.

``--quick`` shrinks every size (and stands tiny models in for the paper's) so the script can
be smoke-tested on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from radiff_scale.classes import OBJECT_CLASSES  # noqa: E402
from radiff_scale.diffusion.settings import SamplerSpec  # noqa: E402
from radiff_scale.data.mask_bank import MaskBank  # noqa: E402
from radiff_scale.diffusion.loss import ldm_loss  # noqa: E402
from radiff_scale.diffusion.sampling import sample_tiles  # noqa: E402
from radiff_scale.eval.mask_agreement import bright_pixels, iou  # noqa: E402
from radiff_scale.models.autoencoder import ae_loss  # noqa: E402
from radiff_scale.models.config import load_models_config, tiny_models_config  # noqa: E402
from radiff_scale.models.io import RadiffModels  # noqa: E402

DEMO_MODEL = REPO / "radiff_scale" / "assets" / "demo"
PAPER_CONFIG = REPO / "configs" / "paper.yaml"
CLASS_CYCLE = tuple(int(c) for c in OBJECT_CLASSES)  # any mix will do for timing


def objects(n: int, seed: int = 0, size: int = 128) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Real masks from the shipped bank (centre crop for a smaller model), noise-like preprocessed
    backgrounds, one seed per tile."""
    bank = MaskBank.default()
    masks = np.stack([bank.pick(CLASS_CYCLE[i % 3], seed * 1_000_003 + i)[1] for i in range(n)])
    lo = (masks.shape[-1] - size) // 2
    masks = masks[:, lo:lo + size, lo:lo + size]
    rng = np.random.default_rng(seed)
    backgrounds = np.clip(0.2 + 0.02 * rng.standard_normal((n, size, size)), 0, 1).astype(np.float32)
    return masks.astype(np.uint8), backgrounds, [seed * 7919 + i for i in range(n)]


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 tensor-core matmuls/convs on fp32 storage (PyTorch leaves matmuls exact by default)."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(device: str, fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best-of wall time of ``fn`` after one warm-up call (CUDA kernels chosen, memory pooled)."""
    out = fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - tic)
    return best, out


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def sampler_call(models: RadiffModels, masks: np.ndarray, backgrounds: np.ndarray, seeds: list[int], spec: SamplerSpec,
                 mode: str = "fp32"):
    """One sample_tiles call in ``mode``: fp32, tf32 (fp32 with TF32 matmuls) or bf16 (the actors' autocast)."""
    def call() -> np.ndarray:
        with tf32(mode == "tf32"):
            return sample_tiles(models, masks, backgrounds, seeds, spec.steps, (spec.guidance_mask, spec.guidance_background),
                                spec.name, spec.eta, precision="bf16" if mode == "bf16" else "fp32")
    return call


def mask_iou(tiles: np.ndarray, masks: np.ndarray) -> float:
    """Quality as benchmarks/sampling.py measures it: IoU of a tile's bright pixels with its mask."""
    return float(np.mean([iou(bright_pixels(t), m > 0) for t, m in zip(tiles, masks)]))


def agreement(device: str, n: int, spec: SamplerSpec) -> dict[str, Any]:
    masks, backgrounds, seeds = objects(n)
    cpu = sampler_call(RadiffModels.load(DEMO_MODEL, "cpu"), masks, backgrounds, seeds, spec)()
    models = RadiffModels.load(DEMO_MODEL, device)
    one_batch = sampler_call(models, masks, backgrounds, seeds, spec)()
    in_eights = np.concatenate([
        sampler_call(models, masks[i:i + 8], backgrounds[i:i + 8], seeds[i:i + 8], spec)() for i in range(0, n, 8)
    ])
    bf16 = sampler_call(models, masks, backgrounds, seeds, spec, "bf16")()
    diff = np.abs(one_batch - cpu)
    return {
        "tiles": n,
        "cuda_vs_cpu_max_abs": float(diff.max()),
        "cuda_vs_cpu_mean_abs": float(diff.mean()),
        "cuda_vs_cpu_pixels_over_1e-3": float((diff > 1e-3).mean()),
        "batch_of_n_vs_batches_of_8_max_abs": float(np.abs(one_batch - in_eights).max()),
        "bf16_vs_fp32_mean_abs": float(np.abs(bf16 - one_batch).mean()),
        "bf16_vs_fp32_max_abs": float(np.abs(bf16 - one_batch).max()),
        "mask_iou_fp32": mask_iou(one_batch, masks),
        "mask_iou_bf16": mask_iou(bf16, masks),
        "tile_mean": float(cpu.mean()),
    }


def sampling_rows(device: str, name: str, models: RadiffModels, batches: list[int], modes: list[str],
                  spec: SamplerSpec, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for batch in batches:
        masks, backgrounds, seeds = objects(batch, seed=1, size=models.autoencoder.config.image_size)
        for mode in modes:
            reset_peak(device)
            seconds, _ = timed(device, sampler_call(models, masks, backgrounds, seeds, spec, mode), repeats)
            rows.append({"what": "sample", "model": name, "batch": batch, "precision": mode,
                         "seconds": seconds, "per_s": batch / seconds, "peak_gib": peak_gib(device)})
            print(f"  sample {name:5s} batch {batch:5d} {mode:4s}: {batch / seconds:9.1f} tiles/s", flush=True)
    return rows


def training_rows(device: str, models: RadiffModels, batches: dict[str, int], modes: list[str],
                  repeats: int) -> list[dict[str, Any]]:
    """One optimiser step of each stage per call, as the training job's loop does it."""
    rows = []
    models.autoencoder.train()
    models.unet.train()
    for stage, batch in batches.items():
        masks, backgrounds, _ = objects(batch, seed=2, size=models.autoencoder.config.image_size)
        images = torch.from_numpy(backgrounds).unsqueeze(1).to(device)
        mask_t = torch.from_numpy(masks.astype(np.int64)).to(device)
        module = models.autoencoder if stage == "ae" else models.unet
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-5)

        def step() -> float:
            optimizer.zero_grad(set_to_none=True)
            if stage == "ae":
                loss, _ = ae_loss(models.autoencoder, images)
            else:
                loss, _ = ldm_loss(models, {"images": images, "masks": mask_t, "backgrounds": images[:, 0]})
            loss.backward()
            optimizer.step()
            return float(loss.detach())

        for mode in modes:
            reset_peak(device)
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=mode == "bf16"):
                seconds, _ = timed(device, step, repeats)
            rows.append({"what": f"train-{stage}", "model": "paper", "batch": batch, "precision": mode,
                         "seconds": seconds, "per_s": batch / seconds, "peak_gib": peak_gib(device)})
            print(f"  train {stage:3s} batch {batch:4d} {mode:4s}: {batch / seconds:9.1f} samples/s", flush=True)
        del optimizer
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a CPU smoke test)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "gpu_check.json")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    quick = args.quick or device == "cpu"
    spec = SamplerSpec(steps=2) if quick else SamplerSpec()
    report: dict[str, Any] = {
        "machine": platform.node(), "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__, "sampler": {"name": spec.name, "steps": spec.steps,
                                                 "guidance": [spec.guidance_mask, spec.guidance_background]},
    }
    print(f"device {report['device']}, torch {torch.__version__}", flush=True)

    tic = time.perf_counter()
    report["agreement"] = agreement(device, 4 if quick else 64, spec)
    print("agreement:", json.dumps(report["agreement"], indent=1), flush=True)

    modes = ["fp32", "bf16"] if quick else ["fp32", "tf32", "bf16"]
    demo = RadiffModels.load(DEMO_MODEL, device)
    rows = sampling_rows(device, "demo", demo, [4] if quick else [256, 1024], modes, spec, 1 if quick else 2)
    del demo
    paper_config = tiny_models_config() if quick else load_models_config(PAPER_CONFIG)
    paper = RadiffModels.from_config(paper_config, seed=0, device=device, with_mask_prior=False).eval()
    rows += sampling_rows(device, "paper", paper, [2] if quick else [64, 256], modes, spec, 1)
    rows += training_rows(device, paper, {"ae": 2, "ldm": 2} if quick else {"ae": 32, "ldm": 64},
                          ["fp32", "bf16"], 1 if quick else 3)
    report["rows"] = rows
    report["wall_s"] = time.perf_counter() - tic

    print(f"\n{'what':10s} {'model':6s} {'batch':>6s} {'prec':5s} {'per s':>9s} {'peak GiB':>9s}")
    for row in rows:
        peak = f"{row['peak_gib']:9.2f}" if row["peak_gib"] is not None else f"{'-':>9s}"
        print(f"{row['what']:10s} {row['model']:6s} {row['batch']:6d} {row['precision']:5s} {row['per_s']:9.1f} {peak}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json} ({report['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
