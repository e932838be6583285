"""One simulated cutout: background, then artefacts, galaxies and compact sources, with exact masks.

:func:`simulate_cutout` is a pure function of ``(config, seed)``; the rules it follows
(what a cutout holds, how labels and placement work) are described in :mod:`.simulate`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radiff_scale.beam import Beam
from radiff_scale.data.sim_background import RealMap, load_real_maps, power_law_field, real_patch
from radiff_scale.data.sim_config import SimConfig
from radiff_scale.data.sim_convolution import beam_noise
from radiff_scale.data.sim_placement import draw_count, place_artefact, place_compact, place_extended
from radiff_scale.data.sim_scene import Scene, SimObject
from radiff_scale.seeding import derive_rng


@dataclass
class LabelledCutout:
    """A simulated cutout: ``image = background + sum(o.model for o in objects)`` (float32, Jy/beam)."""

    image: np.ndarray
    background: np.ndarray
    objects: list[SimObject]
    rms_jy: float
    beam: Beam
    pixel_scale_arcsec: float
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)

    def class_mask(self) -> np.ndarray:
        """Class id per pixel (uint8), 0 where no object is; masks never overlap."""
        out = np.zeros(self.image.shape, dtype=np.uint8)
        for obj in self.objects:
            out[obj.mask] = int(obj.class_id)
        return out

    def instance_mask(self) -> np.ndarray:
        """``i + 1`` for the pixels of ``objects[i]`` (int32), 0 elsewhere."""
        out = np.zeros(self.image.shape, dtype=np.int32)
        for i, obj in enumerate(self.objects):
            out[obj.mask] = i + 1
        return out

    def snr(self, obj: SimObject) -> float:
        """Peak signal-to-noise ratio |peak| / rms of one of this cutout's objects."""
        return abs(obj.peak_jy) / self.rms_jy


def simulate_cutout(config: SimConfig, seed: int, real_maps: tuple[RealMap, ...] | None = None) -> LabelledCutout:
    """Simulate one labelled cutout; a pure function of ``(config, seed)``.

    ``real_maps`` only saves re-opening ``config.real_backgrounds`` for every cutout (pass
    :func:`load_real_maps` of the same paths); it never changes the result. Random streams
    are split by purpose (background, plan, and one per object slot), so e.g. switching the
    background kind leaves the sources of a seed unchanged.
    """
    n = config.size
    shape = (n, n)
    bg_rng = derive_rng(seed, 0, "background")
    beam, scale = config.beam, config.pixel_scale_arcsec
    meta: dict[str, Any] = {"background": config.background}
    if config.background == "real":
        maps = real_maps if real_maps is not None else load_real_maps(config.real_backgrounds)
        background, rms, m, r0, c0 = real_patch(config, bg_rng, maps)
        beam = m.beam or beam
        scale = m.pixel_scale_arcsec or scale
        meta.update(background_file=os.path.basename(m.path), background_row0=r0, background_col0=c0)
    else:
        rms = config.rms_jy
        if config.rms_jy_max is not None and config.rms_jy_max > config.rms_jy:
            rms = math.exp(bg_rng.uniform(math.log(config.rms_jy), math.log(config.rms_jy_max)))
        background = beam_noise(bg_rng, shape, beam, scale, rms)
        if config.background == "noise+diffuse" and config.diffuse_nsigma > 0:
            background += config.diffuse_nsigma * rms * power_law_field(bg_rng, n, config.diffuse_slope)

    scene = Scene(shape, config.mask_nsigma * rms, config.min_gap_px, beam.area_pixels(scale))
    plan = derive_rng(seed, 0, "plan")
    n_artefacts = draw_count(plan, config.p_spurious, config.mean_artefacts)
    n_extended = draw_count(plan, config.p_extended, config.mean_extended)
    n_compact = draw_count(plan, config.p_compact, config.mean_compact)
    for k in range(n_artefacts):
        place_artefact(scene, derive_rng(seed, k, "artefact"), config, beam, scale, rms)
    for k in range(n_extended):
        place_extended(scene, derive_rng(seed, k, "extended"), config, beam, scale, rms)
    for k in range(n_compact):
        place_compact(scene, derive_rng(seed, k, "compact"), config, beam, scale, rms)

    image = background.copy()
    for obj in scene.objects:
        image += obj.model
    return LabelledCutout(
        image=image.astype(np.float32),
        background=background.astype(np.float32),
        objects=scene.objects,
        rms_jy=float(rms),
        beam=beam,
        pixel_scale_arcsec=float(scale),
        seed=int(seed),
        meta=meta,
    )
