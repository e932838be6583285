"""The guidance-distilled student: starts as the teacher, learns the guided output with guidance as an
input, samples deterministically per object (alone or in a batch, on 1 or 2 actors) with one evaluation
per step, travels in bundles, and is refused where absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from radiff_scale.classes import SourceClass  # noqa: E402
from radiff_scale.diffusion.distillation import guidance_distillation_loss, guided_teacher_output  # noqa: E402
from radiff_scale.diffusion.sampling import guided_eps, sample_masks, sample_tiles  # noqa: E402
from radiff_scale.errors import RadiffError  # noqa: E402
from radiff_scale.models import RadiffModels, tiny_models_config  # noqa: E402
from radiff_scale.models.io import check_bundle  # noqa: E402
from radiff_scale.models.student import GuidedStudent, StudentConfig  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _with_student(models: RadiffModels, guidance_weight: float = 0.5) -> RadiffModels:
    """Give ``models`` a student whose guidance input matters (random, not zero, projection)."""
    models.student = GuidedStudent.from_teacher(models.unet, StudentConfig()).eval()
    with torch.no_grad():
        models.student.net.unet.time_embedding.cond_proj.weight.normal_(
            0, guidance_weight, generator=torch.Generator().manual_seed(2)
        )
    return models


@pytest.fixture(scope="module")
def models() -> RadiffModels:
    m = RadiffModels.from_config(tiny_models_config(), seed=0).eval()
    with torch.no_grad():
        m.unet.background.null_tokens.normal_(0, 1.0, generator=torch.Generator().manual_seed(1))
    return _with_student(m)


def _masks(n: int, size: int = 32) -> np.ndarray:
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        masks[i, 4 + i : 12 + i, 6:14] = SourceClass.EXTENDED
        masks[i, 20:23, 20 + i : 23 + i] = SourceClass.COMPACT
    return masks


def _backgrounds(n: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(3).random((n, size, size), dtype=np.float32)


def test_the_student_starts_as_the_teachers_conditional_model() -> None:
    m = RadiffModels.from_config(tiny_models_config(), seed=0).eval()
    student = GuidedStudent.from_teacher(m.unet, StudentConfig()).eval()
    g = torch.Generator().manual_seed(0)
    x, bg = torch.randn(3, 3, 8, 8, generator=g), torch.randn(3, 3, 8, 8, generator=g)
    cond = m.unet.mask_condition(torch.from_numpy(_masks(3).astype(np.int64)))
    t, keep = torch.tensor([999, 500, 19]), torch.tensor([True, False, True])
    with torch.no_grad():
        teacher = m.unet(x, t, cond, bg, keep)
        for scales in ([1.0, 1.0], [5.0, 2.0]):
            out = student(x, t, cond, bg, keep, torch.tensor([scales] * 3))
            assert torch.equal(out, teacher)  # zero guidance projection: guidance has no effect yet
    assert student.config.unet == m.unet.config


def test_the_distillation_target_is_the_samplers_guidance_formula() -> None:
    m = _frozen_tiny()
    g = torch.Generator().manual_seed(0)
    x, bg = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    cond = m.unet.mask_condition(torch.from_numpy(_masks(2).astype(np.int64)))
    t = torch.tensor([700, 700])
    with torch.no_grad():
        for has_background in (True, False):
            keep = torch.full((2,), has_background)
            got = guided_teacher_output(m.unet, x, t, cond, bg, keep, torch.tensor([[3.0, 1.5], [3.0, 1.5]]))
            want = guided_eps(m.unet, x, torch.tensor(700), cond, bg, has_background, (3.0, 1.5))
            assert torch.allclose(got, want, atol=1e-5)
            assert (got - m.unet(x, t, cond, bg, keep)).abs().max() > 1e-3  # guidance does change it


def _batch(n: int = 4) -> dict[str, torch.Tensor]:
    """Images, masks and backgrounds of a 32x32 toy batch, as the training stage hands them over."""
    masks = torch.from_numpy(_masks(n).astype(np.int64))
    g = torch.Generator().manual_seed(4)
    images = torch.rand(n, 1, 32, 32, generator=g) * 0.2 + 0.5 * (masks > 0).unsqueeze(1)
    return {"images": images, "masks": masks, "backgrounds": torch.rand(n, 1, 32, 32, generator=g) * 0.2}


def _frozen_tiny() -> RadiffModels:
    m = RadiffModels.from_config(tiny_models_config(), seed=0).eval()
    with torch.no_grad():
        m.unet.background.null_tokens.normal_(0, 1.0, generator=torch.Generator().manual_seed(1))
    m.unet.requires_grad_(False)
    m.autoencoder.requires_grad_(False)
    return m


def _generators() -> list[torch.Generator]:
    return [torch.Generator().manual_seed(10 + i) for i in range(4)]


def test_a_fresh_student_already_matches_the_teacher_without_guidance() -> None:
    """Scales fixed at 1 and every background kept: the target is e(m, b), which a fresh student is."""
    m = _frozen_tiny()
    config = StudentConfig(guidance_mask_range=(1.0, 1.0), guidance_background_range=(1.0, 1.0), background_dropout=0.0)
    student = GuidedStudent.from_teacher(m.unet, config)
    loss, logs = guidance_distillation_loss(m, student, _batch(), _generators())
    assert float(loss.detach()) < 1e-10 and logs["background_kept"] == 1.0
    guided, _ = guidance_distillation_loss(m, GuidedStudent.from_teacher(m.unet, StudentConfig()), _batch(), _generators())
    assert float(guided.detach()) > 1e-4  # with guidance to learn, it does not


def test_distillation_loss_is_reproducible_and_falls_when_the_student_learns() -> None:
    m = _frozen_tiny()
    student = GuidedStudent.from_teacher(m.unet, StudentConfig())
    batch = _batch()
    first, logs = guidance_distillation_loss(m, student, batch, _generators())
    again, _ = guidance_distillation_loss(m, student, batch, _generators())
    first, again = first.detach(), again.detach()
    assert float(first) == float(again) and float(first) > 0 and 0 <= logs["background_kept"] <= 1
    optimizer = torch.optim.Adam(student.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        loss, _ = guidance_distillation_loss(m, student, batch, _generators())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert min(losses[-3:]) < 0.5 * losses[0]
    assert all(p.grad is None for p in m.unet.parameters())  # the teacher stays frozen
    assert student.net.unet.time_embedding.cond_proj.weight.abs().sum() > 0  # the guidance input is learnt


def test_distilled_tiles_do_not_depend_on_their_batch_and_follow_seed_and_guidance(models: RadiffModels) -> None:
    masks, backgrounds = _masks(4), _backgrounds(4)
    seeds = [11, 2**62 + 5, 7, 123456789]
    batch = sample_tiles(models, masks, backgrounds, seeds, 4, (3.0, 1.0), "distilled")
    assert batch.shape == (4, 32, 32) and batch.dtype == np.float32 and 0 <= batch.min() <= batch.max() <= 1
    alone = sample_tiles(models, masks[2:3], backgrounds[2:3], seeds[2:3], 4, (3.0, 1.0), "distilled")
    assert np.abs(alone[0] - batch[2]).max() < 1e-5
    moved = sample_tiles(models, masks[[2, 0]], backgrounds[[2, 0]], [seeds[2], seeds[0]], 4, (3.0, 1.0), "distilled")
    assert np.abs(moved[0] - batch[2]).max() < 1e-5 and np.abs(moved[1] - batch[0]).max() < 1e-5
    other_seed = sample_tiles(models, masks[:1], backgrounds[:1], [12], 4, (3.0, 1.0), "distilled")
    assert np.abs(other_seed[0] - batch[0]).max() > 1e-3
    other_guidance = sample_tiles(models, masks[:1], backgrounds[:1], seeds[:1], 4, (1.0, 1.0), "distilled")
    assert np.abs(other_guidance[0] - batch[0]).max() > 1e-4


def test_distilled_sampler_evaluates_the_student_once_per_step_and_never_the_teacher(models: RadiffModels) -> None:
    calls = {"student": 0, "teacher": 0}
    hooks = [
        models.student.register_forward_hook(lambda *_: calls.__setitem__("student", calls["student"] + 1)),
        models.unet.register_forward_hook(lambda *_: calls.__setitem__("teacher", calls["teacher"] + 1)),
    ]
    try:
        sample_tiles(models, _masks(2), _backgrounds(2), [1, 2], 4, (3.0, 1.0), "distilled")
        assert calls == {"student": 4, "teacher": 0}
        sample_tiles(models, _masks(2), _backgrounds(2), [1, 2], 4, (3.0, 1.0), "dpm++")
        assert calls == {"student": 4, "teacher": 4}  # the teacher's 3 guided evaluations are one batched forward
    finally:
        for hook in hooks:
            hook.remove()


def test_student_sampling_is_refused_where_it_cannot_work(models: RadiffModels) -> None:
    teacher_only = RadiffModels(models.autoencoder, models.unet, models.schedule, models.mask_prior)
    with pytest.raises(RadiffError, match="needs a bundle with a distilled student"):
        sample_tiles(teacher_only, _masks(1), None, [1], 4, 3.0, "distilled")
    with pytest.raises(RadiffError, match="mask prior has no distilled student"):
        sample_masks(models.mask_prior, [1], 4, "distilled")


def test_a_bundle_keeps_its_student_and_the_driver_refuses_the_student_sampler_without_one(models: RadiffModels, tmp_path: Path) -> None:
    from radiff_scale.models.bundle import check_sampler_fits

    path = models.save(tmp_path / "with")
    index = check_bundle(path)
    assert "student" in index["components"]
    loaded = RadiffModels.load(path)
    assert loaded.student is not None and loaded.student.config == models.student.config
    masks, bgs = _masks(2), _backgrounds(2)
    assert np.array_equal(
        sample_tiles(loaded, masks, bgs, [3, 4], 2, (3.0, 1.0), "distilled"),
        sample_tiles(models, masks, bgs, [3, 4], 2, (3.0, 1.0), "distilled"),
    )
    check_sampler_fits(index, "distilled", path)  # fine
    without = RadiffModels(models.autoencoder, models.unet, models.schedule).save(tmp_path / "without")
    check_sampler_fits(check_bundle(without), "dpm++", without)
    with pytest.raises(RadiffError, match="needs a distilled student in model"):
        check_sampler_fits(check_bundle(without), "distilled", without)


def test_student_tiles_are_the_same_on_one_or_two_actors(ray_local, tiny_bundle: Path, tmp_path: Path) -> None:
    import zarr

    from actors.sampling_stage import ArrayBatches, sample_to_store
    from actors.tile_sampler import make_sampler_pool
    from radiff_scale.diffusion.settings import SamplerSpec

    bundle = RadiffModels.load(tiny_bundle)
    _with_student(bundle, guidance_weight=0.1)
    path = bundle.save(tmp_path / "bundle")
    settings = SamplerSpec("distilled", 2, 3.0, 1.0, 0.0)
    masks, backgrounds = _masks(8, 128), _backgrounds(8, 128)
    seeds = list(range(100, 108))
    pool = make_sampler_pool(2, str(path), settings, use_gpu=False, threads=1)
    try:
        runs = []
        for actors in (pool[:1], pool):
            store = tmp_path / f"{len(actors)}.zarr"
            sample_to_store(path, settings, ArrayBatches(masks, backgrounds, seeds, 4), store, pool=actors)
            runs.append(zarr.open_array(str(store), mode="r")[:])
    finally:
        for actor in pool:
            ray_local.kill(actor)
    assert runs[0].shape == (8, 128, 128) and np.ptp(runs[0]) > 0
    assert np.array_equal(runs[0], runs[1])
