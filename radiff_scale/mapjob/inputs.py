"""What a map is made from, resolved and checked before any folder is made or any work starts.

Everything a user can get wrong in a spec -- a missing model or bank, a bundle that
cannot map tiles back to flux, ``masks: prior`` without a prior, an unreadable
background -- is found here, on the driver, as one line; the stages after it only
meet internal failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radiff_scale.classes import OBJECT_CLASSES, class_from_id
from radiff_scale.compose.background import BackgroundSource, FitsBackground, SyntheticBackground
from radiff_scale.compose.given import GivenObjects
from radiff_scale.compose.planner import PlacementConfig
from radiff_scale.compose.resample import pixels_per_beam, zoom_factor
from radiff_scale.compose.sigma import SigmaMap
from radiff_scale.compose.spec import MapSpec
from radiff_scale.compose.tile_bank import TileBank
from radiff_scale.compose.wcs import MapGeometry, read_map_header
from radiff_scale.data.mask_bank import MaskBank
from radiff_scale.data.stretch import Stretch, stretch_for_card
from radiff_scale.errors import RadiffError
from radiff_scale.models.bundle import resolve_model_dir


@dataclass(frozen=True)
class MapInputs:
    """The resolved inputs of one map run.

    ``model_dir``/``index`` are set for model-sampled tiles, ``tile_bank`` for banked
    ones. ``mask_bank`` is None only for ``masks: prior`` (its masks are sampled on the
    actors once Ray is up). ``sigma`` is None when the noise must be measured from a
    FITS background; a synthetic background's rms is known everywhere. ``zoom``: map
    pixels per beam over the model's (tiles are sampled at the model's scale).
    """

    geometry: MapGeometry
    background: BackgroundSource
    sigma: SigmaMap | None
    card: dict[str, Any]
    stretch: Stretch
    model_dir: Path | None
    index: dict[str, Any] | None
    tile_bank: TileBank | None
    mask_bank: MaskBank | None
    zoom: float


def resolve_inputs(spec: MapSpec) -> MapInputs:
    """Every input of ``spec``, loaded and checked (a bundle is checked without reading a weight)."""
    from radiff_scale.models.bundle import check_sampler_fits
    from radiff_scale.models.io import check_bundle  # torch: only for model-sampled tiles

    tiles = spec.tile_source
    tile_bank = TileBank.load(tiles.bank) if tiles.bank is not None else None
    model_dir = resolve_model_dir(spec.model) if tile_bank is None else None
    index = check_bundle(model_dir) if model_dir is not None else None
    if index is not None:
        check_sampler_fits(index, spec.sampler.name, spec.model)
    card = dict(index.get("card") or {}) if index is not None else tile_bank.card
    stretch = stretch_for_card(card)  # without it tiles cannot go back to flux
    geometry, background, sigma = geometry_and_background(spec)
    zoom = model_zoom(card, geometry) if tile_bank is None else 1.0
    if tile_bank is not None:
        mask_bank: MaskBank | None = tile_bank  # a tile bank's masks come with its tiles
    else:
        mask_bank = load_mask_bank(spec, model_dir, index)
    return MapInputs(geometry, background, sigma, card, stretch, model_dir, index, tile_bank, mask_bank, zoom)


def geometry_and_background(spec: MapSpec) -> tuple[MapGeometry, BackgroundSource, SigmaMap | None]:
    """The map's geometry and background, and its noise map when it is known without measuring."""
    if spec.background is not None:
        geometry = read_map_header(spec.background, default_freq_hz=spec.freq_hz)
        return geometry, FitsBackground(spec.background), None
    geometry = MapGeometry(
        shape=(spec.size, spec.size), pixel_scale_arcsec=spec.pixel_scale_arcsec, centre_ra_deg=spec.centre_ra_deg,
        centre_dec_deg=spec.centre_dec_deg, beam=spec.beam, freq_hz=spec.freq_hz,
    )
    source = SyntheticBackground(geometry, spec.noise_rms_jy, spec.seed)
    # Synthetic noise has a known rms everywhere: no need to generate the map twice to measure it.
    sigma = SigmaMap(grid=np.full((1, 1), spec.noise_rms_jy), block=max(geometry.shape), shape=geometry.shape)
    return geometry, source, sigma


def load_mask_bank(spec: MapSpec, model_dir: Path | None, index: dict[str, Any] | None) -> MaskBank | None:
    """The bank of ``masks: bank`` / ``bank:PATH``; None for ``prior``, after checking the bundle has one."""
    masks = spec.mask_source
    if masks.prior:
        if model_dir is None or index is None:
            raise RadiffError("masks: prior needs tiles: model (a tile bank brings its own masks)")
        if "mask_prior" not in (index.get("components") or []):
            raise RadiffError(
                f"model {model_dir} has no mask prior: use masks: bank, or train one (radiff-scale train --stage mask)"
            )
        return None
    if masks.bank is None:
        return MaskBank.default()
    if not masks.bank.is_file():
        raise RadiffError(f"masks {spec.masks}: no such file")
    return MaskBank.from_npz(masks.bank)


def check_bank_classes(bank: MaskBank | None, placement: PlacementConfig, given: GivenObjects | None) -> None:
    """Every class the plan can ask for is in the bank: refused here, not by the planner once Ray is up.

    Random objects (and given rows without a class) draw every class of non-zero
    ``placement.class_fractions``; a given class is asked for as it is. ``None`` (masks:
    prior) is checked by nothing: the prior's masks are sampled later.
    """
    if bank is None:
        return
    weights = dict(zip(OBJECT_CLASSES, placement.class_weights()))
    drawn = placement.n_objects != 0 if given is None else bool(np.any(given.class_ids < 0))
    needed = {cls for cls, w in weights.items() if w > 0} if drawn else set()
    if given is not None:
        needed |= {class_from_id(int(c)) for c in np.unique(given.class_ids[given.class_ids >= 0])}
    for cls in sorted(needed):
        if not bank.entries_with(int(cls)).size:
            raise RadiffError(f"{bank.source} holds no {cls.label} object, but the map asks for some "
                              f"(use a bank that has them, or set placement.class_fractions.{cls.label}=0)")


def model_zoom(card: dict[str, Any], geometry: MapGeometry) -> float:
    """Map pixels per beam over the model's (1 for bundles that do not record theirs)."""
    return zoom_factor(pixels_per_beam(geometry.beam, geometry.pixel_scale_arcsec), card.get("pixels_per_beam"))


def describe_tile_source(inputs: MapInputs) -> str | None:
    """What the user must be told about the tiles before the run (never silent), or None."""
    if inputs.tile_bank is not None:
        bank = inputs.tile_bank
        return (f"tiles: copied from the tile bank {bank.source} ({len(bank)} pre-sampled tiles, "
                f"8 flips/rotations each; shapes repeat and tiles ignore the local background)")
    if inputs.zoom != 1.0:
        ppb = inputs.card["pixels_per_beam"]
        return (f"tiles: the model works at {ppb:.2f} pixels per beam, the map has {inputs.zoom * ppb:.2f}: each "
                f"tile is sampled at the model's scale and resampled by {inputs.zoom:.3f}")
    return None
