"""The arrays a stage trains on, built once on the driver and shared by every worker.

Cutouts are stretched here, not in the workers, so that every rank sees the very same
float32 arrays (the DDP equivalence of N workers and one rests on it) and the object
store holds one copy. The dihedral view of a sample is applied per draw, in the worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from radiff_scale.config import from_dict
from radiff_scale.data.dataset import centre_crop
from radiff_scale.data.mask_bank import BANK_SIZE, MaskBank, crop_or_resize
from radiff_scale.data.sc_format import list_samples, read_sample
from radiff_scale.data.simulate import SimConfig, simulate_cutout
from radiff_scale.data.stretch import Stretch, background_stats
from radiff_scale.errors import RadiffError
from radiff_scale.seeding import derive_seed
from radiff_scale.training.config import DataConfig

#: One training cutout: (image, class mask, background or None, source name, beam FWHM in pixels or None).
Cutout = tuple[np.ndarray, np.ndarray, np.ndarray | None, str, float | None]


def build_training_arrays(config: DataConfig, stretch: Stretch, size: int, progress: bool = True) -> dict[str, Any]:
    """Stretched cutouts, their class masks and background images, and how many came from where.

    Every image and background is encoded with its own background level and rms, as the
    map job encodes the background window an object lands on. A cutout without a stored
    background image gets itself with its objects' pixels set to its background level
    (never the cutout itself: the condition would hand the model its answer).
    """
    images, masks, backgrounds, sources = [], [], [], []
    beams: dict[str, list[float]] = {}
    for image, mask, background, source, ppb in _cutouts(config, size, progress):
        try:
            encoded = stretch.encode(image)
        except RadiffError:
            continue  # a constant cutout carries nothing to learn
        if background is None:
            centre, _ = background_stats(image)
            background = np.where(mask > 0, centre, np.nan_to_num(image, nan=centre))
        try:
            encoded_background = stretch.encode(background)
        except RadiffError:
            encoded_background = np.zeros_like(encoded)  # flat: the model's null background
        images.append(encoded)
        masks.append(mask)
        backgrounds.append(encoded_background)
        sources.append(source)
        if ppb is not None:
            beams.setdefault(source, []).append(ppb)
    if not images:
        raise RadiffError("no usable training cutouts (every cutout was constant)")
    counts = {name: sources.count(name) for name in dict.fromkeys(sources)}
    return {
        "images": np.stack(images).astype(np.float32),
        "masks": np.stack(masks).astype(np.uint8),
        "backgrounds": np.stack(backgrounds).astype(np.float32),
        "counts": counts,
        # What the model learned a beam to be, per source: docs/models.md (pixels per beam).
        "pixels_per_beam": {name: round(float(np.median(v)), 3) for name, v in beams.items()},
        # The scale the model works at: the median over all cutouts (map jobs resample to and from it).
        "model_pixels_per_beam": round(float(np.median([x for v in beams.values() for x in v])), 3) if beams else None,
    }


def _cutouts(config: DataConfig, size: int, progress: bool) -> Iterator[Cutout]:
    """Every training cutout, the datasets' first (in order) and then the simulated ones."""
    for folder in config.datasets:
        root = Path(folder)
        for path in tqdm(list_samples(root), desc=f"reading {root.name}", disable=not progress):
            sample = read_sample(path, root)
            image = centre_crop(sample.image, size, str(path))
            background = None if sample.background is None else centre_crop(sample.background, size, str(path))
            ppb = sample.meta.get("pixels_per_beam")
            ppb = float(ppb) if isinstance(ppb, (int, float)) and not isinstance(ppb, bool) else None
            yield image, centre_crop(sample.class_mask(), size), background, str(folder), ppb
    if config.simulate_n:
        sim = from_dict(SimConfig, config.simulate, where="train.data.simulate")
        ppb = (sim.bmaj_arcsec * sim.bmin_arcsec) ** 0.5 / sim.pixel_scale_arcsec
        for i in tqdm(range(config.simulate_n), desc="simulating cutouts", disable=not progress):
            cut = simulate_cutout(sim, derive_seed(config.simulate_seed, i, "simulate"))
            yield cut.image, cut.class_mask(), cut.background, "simulated", ppb


def mask_prior_arrays(config: DataConfig, size: int) -> dict[str, Any]:
    """The bank's masks at the mask prior's ``mask_size`` (the bank serves 128x128 masks)."""
    bank = MaskBank.default() if config.mask_bank == "bank" else MaskBank.from_npz(config.mask_bank)
    masks = np.stack([bank.mask(i) for i in range(len(bank))]).astype(np.uint8)
    return {"masks": masks if size == BANK_SIZE else crop_or_resize(masks, size)}


def dihedral(array: Any, code: int) -> Any:
    """One of the 8 rotations/flips of the last two axes (code 0 is the identity).

    Image, mask and background of a sample get the same code, so the view stays a
    consistent (image, truth, condition) triple.
    """
    out = np.rot90(array, k=code % 4, axes=(-2, -1))
    return np.flip(out, axis=-1) if code >= 4 else out
