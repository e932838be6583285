"""The three models, their configs and the safetensors bundle (toy sizes; CPU)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from radiff_scale.classes import NUM_CLASSES, SourceClass  # noqa: E402
from radiff_scale.config import to_dict  # noqa: E402
from radiff_scale.errors import RadiffError  # noqa: E402
from radiff_scale.models import (  # noqa: E402
    RadiffModels,
    ae_loss,
    downsample_masks,
    load_models_config,
    mask_statistics,
    measure_latent_stats,
    pool_one_hot,
    tiny_models_config,
    upsample_masks,
)
from radiff_scale.models.io import load_state  # noqa: E402
from radiff_scale.models.unet import ConditionalLatentUNet, UNetConfig  # noqa: E402

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models() -> RadiffModels:
    return RadiffModels.from_config(tiny_models_config(), seed=1).eval()


def _inputs(models: RadiffModels, n: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cfg = models.unet.config
    x = torch.randn(n, cfg.latent_channels, cfg.latent_size, cfg.latent_size, generator=g)
    size = models.autoencoder.config.image_size
    masks = torch.randint(0, NUM_CLASSES, (n, size, size), generator=g)
    bg = torch.randn(n, cfg.latent_channels, cfg.latent_size, cfg.latent_size, generator=g)
    return x, masks, bg


# --- configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["demo", "paper"])
def test_shipped_configs_load_and_ignore_other_sections(name, tmp_path):
    cfg = load_models_config(REPO / "configs" / f"{name}.yaml")
    # f4 latents as in the paper; the paper keeps 3 channels, the demo 8 (real noise texture, docs/models.md)
    assert cfg.autoencoder.latent_size == 32 and cfg.autoencoder.latent_channels == {"paper": 3, "demo": 8}[name]
    assert cfg.schedule.beta_schedule == "scaled_linear" and cfg.schedule.num_train_timesteps == 1000
    # A job config with extra top-level sections and an override still yields the same model sections.
    text = (REPO / "configs" / f"{name}.yaml").read_text() + "\ntrain:\n  lr: 5.0e-5\ndata:\n  root: x\n"
    path = tmp_path / "job.yaml"
    path.write_text(text)
    again = load_models_config(path, {"unet.mask_dropout": 0.2})
    assert again.unet.mask_dropout == 0.2
    assert to_dict(dataclasses.replace(again.unet, mask_dropout=cfg.unet.mask_dropout)) == to_dict(cfg.unet)


def test_config_errors_name_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("unet:\n  base_chanels: 8\n")
    with pytest.raises(RadiffError, match="base_chanels"):
        load_models_config(path)
    path.write_text("unet:\n  latent_size: 16\n")
    with pytest.raises(RadiffError, match="does not match the autoencoder"):
        load_models_config(path)


def test_demo_models_have_cpu_sizes():
    models = RadiffModels.from_config(load_models_config(REPO / "configs" / "demo.yaml"))
    counts = {k: sum(p.numel() for p in m.parameters()) for k, m in models.modules().items()}
    assert counts["autoencoder"] < 1_000_000
    assert 1_000_000 <= counts["unet"] <= 3_000_000
    assert counts["mask_prior"] < 1_000_000


def test_initialisation_depends_only_on_seed():
    a = RadiffModels.from_config(tiny_models_config(), seed=3)
    torch.rand(5)  # global RNG activity must not matter
    b = RadiffModels.from_config(tiny_models_config(), seed=3)
    c = RadiffModels.from_config(tiny_models_config(), seed=4)
    wa, wb, wc = (m.unet.unet.conv_in.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


# --- autoencoder -----------------------------------------------------------------------------


def test_autoencoder_shapes_on_demo_size():
    cfg = load_models_config(REPO / "configs" / "demo.yaml").autoencoder
    from radiff_scale.models import RadioAutoencoder

    ae = RadioAutoencoder(cfg).eval()
    with torch.no_grad():
        z = ae.encode(torch.rand(2, 128, 128))
        assert z.shape == (2, cfg.latent_channels, 32, 32)
        assert ae.decode(z).shape == (2, 1, 128, 128)
        sampled = ae.encode(torch.rand(2, 1, 128, 128), sample=True, generator=torch.Generator().manual_seed(0))
    assert sampled.shape == (2, cfg.latent_channels, 32, 32)
    with pytest.raises(ValueError, match="expected images"):
        ae.encode(torch.rand(2, 64, 64))


def test_ae_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    ae = RadiffModels.from_config(tiny_models_config(), seed=0).autoencoder.train()
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    centres = torch.rand(4, 2, generator=g) * 20 + 6
    images = torch.stack([torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 18.0) for cx, cy in centres])
    opt = torch.optim.AdamW(ae.parameters(), lr=3e-3)
    losses = []
    for step in range(15):
        loss, logs = ae_loss(ae, images, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(logs["loss"])
        assert set(logs) == {"loss", "l1", "kl"} and logs["kl"] >= 0
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])


def test_measured_latent_stats_give_unit_variance(models):
    images = torch.rand(6, 32, 32, generator=torch.Generator().manual_seed(2)) * 0.5 + 0.2
    cfg = measure_latent_stats(models.autoencoder, images)
    assert len(cfg.scaling_factor) == len(cfg.shift_factor) == cfg.latent_channels
    ae = RadiffModels.from_config(dataclasses.replace(tiny_models_config(), autoencoder=cfg), seed=1).autoencoder
    ae.load_state_dict(models.autoencoder.state_dict())
    with torch.no_grad():
        z = ae.encode(images)
        per_channel = z.transpose(0, 1).reshape(cfg.latent_channels, -1)
        # every channel on its own, not only the whole: one scale for all left texture channels tiny
        assert torch.allclose(per_channel.mean(dim=1), torch.zeros(cfg.latent_channels), atol=1e-4)
        assert torch.allclose(per_channel.std(dim=1), torch.ones(cfg.latent_channels), atol=1e-3)
        # decode inverts the scaling: same images as the unscaled model decoding raw latents
        raw = models.autoencoder.encode(images)
        assert torch.allclose(ae.decode(z), models.autoencoder.decode(raw), atol=1e-5)


# --- U-Net conditioning ----------------------------------------------------------------------


def test_pool_one_hot_keeps_class_fractions():
    rng = np.random.default_rng(0)
    masks = torch.from_numpy(rng.integers(0, NUM_CLASSES, size=(3, 32, 32)))
    pooled = pool_one_hot(masks, 8)
    assert pooled.shape == (3, NUM_CLASSES, 8, 8)
    assert torch.allclose(pooled.sum(dim=1), torch.ones(3, 8, 8))
    # fraction of class c in latent pixel (i, j) = share of c in its 4x4 block
    block = masks[1, 8:12, 20:24]
    for c in range(NUM_CLASSES):
        assert pooled[1, c, 2, 5].item() == pytest.approx(float((block == c).float().mean()))
    # total pixel count per class is preserved, so a one-pixel object survives pooling
    counts = torch.stack([(masks == c).sum(dim=(1, 2)) for c in range(NUM_CLASSES)], dim=1).float()
    assert torch.allclose(pooled.sum(dim=(2, 3)) * 16, counts)
    single = torch.zeros(1, 32, 32, dtype=torch.long)
    single[0, 5, 6] = SourceClass.SPURIOUS
    assert pool_one_hot(single, 8)[0, SourceClass.SPURIOUS, 1, 1].item() == pytest.approx(1 / 16)
    with pytest.raises(ValueError, match="class ids"):
        pool_one_hot(torch.full((1, 32, 32), NUM_CLASSES), 8)


def test_no_mask_condition_is_distinct_and_changes_the_output(models):
    x, masks, bg = _inputs(models)
    unet = models.unet
    keep = torch.tensor([True, False])
    cond = unet.mask_condition(masks, keep)
    assert torch.allclose(cond[0].sum(dim=0), torch.ones(8, 8)) and torch.count_nonzero(cond[1]) == 0
    t = torch.tensor([10, 10])
    yes = torch.ones(2, dtype=torch.bool)
    with torch.no_grad():
        full = unet(x, t, unet.mask_condition(masks), bg, yes)
        dropped = unet(x, t, cond, bg, yes)
    assert torch.equal(full[0], dropped[0])  # per-sample independence
    assert not torch.allclose(full[1], dropped[1])
    assert full.shape == x.shape


def test_background_tokens_and_null_tokens(models):
    head = models.unet.background
    _, _, bg = _inputs(models, n=3)
    other = bg.clone()
    other[0] += 1.0
    keep = torch.tensor([True, False, True])
    with torch.no_grad():
        a = head(bg, keep)
        b = head(other, keep)
        dropped = head(other, torch.tensor([False, False, False]))
    n_tokens = models.unet.config.background.num_tokens
    assert a.shape == (3, n_tokens, models.unet.config.context_dim)
    assert torch.equal(a[1], head.null_tokens.detach())  # dropped: null tokens, latents ignored
    assert torch.equal(dropped[0], head.null_tokens.detach())
    assert not torch.allclose(a[0], b[0])  # kept: tokens follow the background
    assert torch.equal(a[2], b[2])


# --- mask prior ------------------------------------------------------------------------------


def test_mask_downsampling_rule():
    m = torch.zeros(1, 4, 4, dtype=torch.long)
    m[0, 0, 0] = m[0, 0, 1] = SourceClass.COMPACT  # 2-2 tie with background -> object
    m[0, 2, 2] = SourceClass.SPURIOUS  # 1 of 4 -> background
    m[0, 2:4, 0:2] = torch.tensor([[1, 3], [3, 1]])  # spurious/extended tie -> higher id
    small = downsample_masks(m, 2)
    assert small.tolist() == [[[SourceClass.COMPACT, 0], [SourceClass.EXTENDED, 0]]]
    assert upsample_masks(small, 2).shape == (1, 4, 4)
    assert torch.equal(upsample_masks(small, 2)[0, :2, :2], torch.full((2, 2), int(SourceClass.COMPACT)))


def test_mask_prior_model_space_round_trip(models):
    prior = models.mask_prior
    rng = np.random.default_rng(1)
    masks = torch.from_numpy(rng.integers(0, NUM_CLASSES, size=(2, 32, 32)))
    x = prior.to_model_space(masks)
    assert x.shape == (2, NUM_CLASSES, 16, 16)
    assert set(torch.unique(x).tolist()) == {-1.0, 1.0}
    assert torch.equal((x > 0).sum(dim=1), torch.ones(2, 16, 16, dtype=torch.long))
    back = prior.from_model_space(x)
    assert back.dtype == torch.uint8 and back.shape == (2, 32, 32)
    assert torch.equal(back.long(), upsample_masks(downsample_masks(masks, 2), 2))


def test_real_masks_survive_the_64px_round_trip(shared_data):
    masks = np.load(shared_data / "masks" / "tiramisu_masks_train.npz")["masks"][::37][:200, 2:130, 2:130]
    t = torch.from_numpy(masks.astype(np.int64))
    back = upsample_masks(downsample_masks(t, 2), 2).numpy()
    assert (back == masks).mean() > 0.99
    before, after = mask_statistics(masks), mask_statistics(back)
    for label, sizes in before.object_sizes.items():
        # Objects of 4+ pixels survive (1-3 pixel annotation specks may not); areas grow < 15 %.
        assert len(after.object_sizes[label]) >= 0.95 * (sizes >= 4).sum()
        assert 1.0 <= after.object_sizes[label].sum() / sizes.sum() < 1.15
        assert after.presence[label] == before.presence[label]


def test_mask_statistics_counts_objects_and_sizes():
    masks = np.zeros((2, 16, 16), dtype=np.uint8)
    masks[0, 1:3, 1:3] = SourceClass.COMPACT  # 4 px
    masks[0, 10, 10] = SourceClass.COMPACT  # 1 px
    masks[0, 11, 11] = SourceClass.COMPACT  # diagonal neighbour: same object (8-connected)
    masks[1, 5:8, 5:10] = SourceClass.EXTENDED  # 15 px
    stats = mask_statistics(masks)
    assert stats.n_masks == 2
    assert sorted(stats.object_sizes["compact"].tolist()) == [2, 4]
    assert stats.object_sizes["extended"].tolist() == [15]
    assert stats.objects_per_mask == {"spurious": 0.0, "compact": 1.0, "extended": 0.5}
    assert stats.presence["compact"] == 0.5 and stats.presence["background"] == 1.0
    assert stats.pixel_fraction["extended"] == pytest.approx(15 / 512)
    summary = stats.to_dict()
    json.dumps(summary)
    assert summary["object_sizes"]["compact"]["count"] == 2 and summary["object_sizes"]["spurious"]["mean"] is None


# --- save / load -----------------------------------------------------------------------------


def test_save_load_gives_identical_outputs(models, tmp_path):
    models.card = {"made_by": "test", "preprocessing": {"scale": 3.0}}
    path = models.save(tmp_path / "bundle")
    assert (path / "unet" / "model.safetensors").is_file() and (path / "mask_prior" / "config.json").is_file()
    loaded = RadiffModels.load(path)
    assert loaded.card == models.card and loaded.schedule == models.schedule
    assert to_dict(loaded.config) == to_dict(models.config)
    x, masks, bg = _inputs(models)
    t = torch.tensor([3, 700])
    keep = torch.tensor([True, False])
    images = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for m in (models, loaded):
            m.out = (
                m.unet(x, t, m.unet.mask_condition(masks), bg, keep),
                m.autoencoder.decode(m.autoencoder.encode(images)),
                m.mask_prior(torch.randn(2, NUM_CLASSES, 16, 16, generator=torch.Generator().manual_seed(6)), t),
            )
    for a, b in zip(models.out, loaded.out):
        assert torch.equal(a, b)


def test_loading_wrong_architecture_names_file_and_parameter(models, tmp_path):
    path = models.save(tmp_path / "bundle")
    other = ConditionalLatentUNet(dataclasses.replace(models.unet.config, base_channels=8, norm_num_groups=4))
    with pytest.raises(RadiffError, match=r"unet/model\.safetensors: parameter unet\.\S+ has shape \(16,.*expected \(8,"):
        load_state(other, path / "unet" / "model.safetensors")
    # The same through the bundle: config.json says one architecture, weights another.
    cfg = json.loads((path / "unet" / "config.json").read_text())
    cfg["layers_per_block"] = 2
    (path / "unet" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RadiffError, match=r"unet/model\.safetensors: parameter .* missing"):
        RadiffModels.load(path)


def test_loading_corrupt_or_foreign_files_is_a_user_error(models, tmp_path):
    path = models.save(tmp_path / "bundle")
    weights = path / "autoencoder" / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:100])
    with pytest.raises(RadiffError, match=r"autoencoder/model\.safetensors: not a readable safetensors"):
        RadiffModels.load(path)
    weights.write_bytes(good)
    with pytest.raises(RadiffError, match="not a model bundle"):
        RadiffModels.load(tmp_path)
    (path / "unet" / "config.json").write_text("{not json")
    with pytest.raises(RadiffError, match=r"unet/config\.json: not valid JSON"):
        RadiffModels.load(path)
    index = json.loads((path / "radiff_models.json").read_text())
    (path / "radiff_models.json").write_text(json.dumps({**index, "version": 99}))
    with pytest.raises(RadiffError, match="version 99"):
        RadiffModels.load(path)


def test_unet_config_validation():
    with pytest.raises(ValueError, match="mask_dropout"):
        UNetConfig(mask_dropout=1.0)
    with pytest.raises(ValueError, match="attention_levels"):
        UNetConfig(attention_levels=(3,))


def test_bundle_without_mask_prior(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("mask_prior: null\n")
    assert load_models_config(path).mask_prior is None
    cfg = dataclasses.replace(tiny_models_config(), mask_prior=None)
    models = RadiffModels.from_config(cfg, seed=2)
    assert models.mask_prior is None
    loaded = RadiffModels.load(models.save(tmp_path / "bundle"))
    assert loaded.mask_prior is None and not (tmp_path / "bundle" / "mask_prior").exists()
    assert to_dict(loaded.config) == to_dict(cfg)


def test_ae_loss_with_per_image_generators_splits_exactly(models):
    images = torch.rand(4, 32, 32, generator=torch.Generator().manual_seed(3))
    gens = lambda: [torch.Generator().manual_seed(50 + i) for i in range(4)]  # noqa: E731
    with torch.no_grad():
        full, logs = ae_loss(models.autoencoder, images, gens())
        halves = [ae_loss(models.autoencoder, images[s], gens()[s])[0].item() for s in (slice(0, 2), slice(2, 4))]
    assert full.item() == pytest.approx(sum(halves) / 2, rel=1e-5)
