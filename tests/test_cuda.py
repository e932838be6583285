"""The CUDA path of the model code: skipped without a GPU (CI has none).

The sampler actors and training workers run exactly these calls on ``cuda``; Ray only
places them. Run on a GPU box with ``python -m pytest tests/test_cuda.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

from radiff_scale.classes import OBJECT_CLASSES  # noqa: E402
from radiff_scale.diffusion.settings import SamplerSpec  # noqa: E402
from radiff_scale.data.mask_bank import MaskBank  # noqa: E402
from radiff_scale.diffusion.sampling import sample_tiles  # noqa: E402
from radiff_scale.models.autoencoder import ae_loss  # noqa: E402
from radiff_scale.models.config import tiny_models_config  # noqa: E402
from radiff_scale.models.io import RadiffModels  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "radiff_scale" / "assets" / "demo"


def _objects(n: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    bank = MaskBank.default()
    classes = [int(c) for c in OBJECT_CLASSES]
    masks = np.stack([bank.pick(classes[i % len(classes)], 100 + i)[1] for i in range(n)])
    rng = np.random.default_rng(0)
    backgrounds = np.clip(0.2 + 0.02 * rng.standard_normal((n, 128, 128)), 0, 1).astype(np.float32)
    return masks, backgrounds, [1000 + i for i in range(n)]


def _sample(models: RadiffModels, masks: np.ndarray, backgrounds: np.ndarray, seeds: list[int]) -> np.ndarray:
    spec = SamplerSpec()
    return sample_tiles(models, masks, backgrounds, seeds, spec.steps, (spec.guidance_mask, spec.guidance_background),
                        spec.name, spec.eta)


@pytest.fixture(autouse=True)
def _exact_fp32():
    """TF32 would make CUDA differ from CPU by ~1e-3 by design; the map job does not enable it."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_cuda_tiles_are_the_cpu_tiles_up_to_rounding() -> None:
    masks, backgrounds, seeds = _objects(16)
    cpu = _sample(RadiffModels.load(DEMO, "cpu"), masks, backgrounds, seeds)
    cuda = _sample(RadiffModels.load(DEMO, "cuda"), masks, backgrounds, seeds)
    diff = np.abs(cuda - cpu)
    assert diff.mean() < 1e-3, diff.mean()
    assert np.quantile(diff, 0.999) < 1e-2


def test_cuda_tiles_do_not_depend_on_the_batch() -> None:
    masks, backgrounds, seeds = _objects(16)
    models = RadiffModels.load(DEMO, "cuda")
    whole = _sample(models, masks, backgrounds, seeds)
    fours = np.concatenate([_sample(models, masks[i:i + 4], backgrounds[i:i + 4], seeds[i:i + 4]) for i in range(0, 16, 4)])
    assert np.abs(whole - fours).mean() < 1e-4
    assert np.abs(whole - fours).max() < 1e-2


@pytest.mark.parametrize("autocast", [False, True])
def test_autoencoder_learns_on_cuda(autocast: bool) -> None:
    """The training job's step (bf16 autocast on CUDA) lowers the loss on a fixed batch."""
    models = RadiffModels.from_config(tiny_models_config(), seed=0, device="cuda", with_mask_prior=False)
    model = models.autoencoder.train()
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    centres = torch.rand(8, 2, generator=torch.Generator().manual_seed(0)) * 20 + 6
    blobs = torch.exp(-((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2) / 18)
    images = blobs.unsqueeze(1).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
            loss, _ = ae_loss(model, images)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0]  # ~0.92 -> ~0.10 on CPU


def test_a_gpu_sampler_actor_samples_in_the_spec_precision() -> None:
    """The actor class Ray places on a GPU (no Ray needed to call it): bf16 by default, fp32 on request."""
    from actors.tile_sampler import TileSampler

    masks, backgrounds, seeds = _objects(8)
    spec = SamplerSpec()
    fields = (spec.name, spec.steps, spec.guidance_mask, spec.guidance_background, spec.eta)
    bf16 = TileSampler(str(DEMO), SamplerSpec(*fields, gpu_precision=spec.gpu_precision), device="cuda")
    assert spec.gpu_precision == "bf16" and bf16.describe()["precision"] == "bf16"
    _, fast = bf16.sample(0, masks, backgrounds, seeds)
    _, exact = bf16.sample(0, masks, backgrounds, seeds, SamplerSpec(*fields, gpu_precision="fp32"))
    assert np.allclose(exact, _sample(bf16.models, masks, backgrounds, seeds), atol=1e-5)
    assert 0 < np.abs(fast - exact).mean() < 0.02
