"""What goes on a map: each object's class, peak signal-to-noise ``k`` and tile seed, from the seed.

The plan is drawn on the driver from the run seed alone, one independent stream per
(object id, purpose), so object i is the same whether the map holds 10 objects or
60,000 and whichever worker later samples its tile. Where the objects go is
:mod:`radiff_scale.compose.placement`; the records both share (what was placed, what
was refused and why) live here so that readers of a placement need not import the
placement machinery.

About ``k``: the paper draws k from an exponential with "lambda = 3", capped at 10. We
read 3 as the *scale* (mean 3), not the rate: with a rate of 3 (mean 1/3) nearly every
object would peak below one local sigma and be invisible, contrary to the paper's
figures. ``k`` is drawn from the exponential of scale ``k_scale`` truncated to
``[k_min, k_cap]`` (inverse CDF of one uniform draw, so no resampling loop and no pile-up
at the cap).

About fluxes: ``k`` says nothing a data challenge can score, so ``flux_mode`` can give each
object a flux in Jy instead (integrated, or peak in Jy/beam), drawn from a source-count
power law dN/dS ~ S^-flux_slope on [flux_min_jy, flux_max_jy] (inverse CDF again). The
default slope, 2.6, is the maximum-likelihood slope of the SDC1 B1 (560 MHz) truth
catalogue in each decade from 0.1 to 10 mJy; the default floor, 0.5 mJy, is five times
the default map noise for a point source.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from radiff_scale.classes import OBJECT_CLASSES, SourceClass, class_from_name
from radiff_scale.errors import RadiffError
from radiff_scale.seeding import derive_seeds, derive_uniforms

#: How an object's brightness is set (see :class:`PlacementConfig`).
FLUX_MODES = ("k", "integrated", "peak")


def _default_fractions() -> dict[str, float]:
    # Compact sources dominate real radio surveys (and the mask bank); extended sources
    # are the interesting minority; spurious artefacts are kept rare but present so that
    # finders are tested against them.
    return {"compact": 0.7, "extended": 0.2, "spurious": 0.1}


@dataclass
class PlacementConfig:
    """What to put on the map and how densely.

    ``n_objects`` fixes the count; otherwise ``density_per_deg2`` (objects per square
    degree of the whole map) needs the pixel scale at planning time. If both are set,
    ``n_objects`` wins. ``class_fractions`` maps class names (aliases such as ``source``
    or ``galaxy`` accepted) to relative weights; they are normalised, so they need not
    sum to one. ``overlap_fraction`` is the largest fraction of an object's footprint
    pixels that may land on pixels already occupied by earlier objects (0 = no overlap).
    ``margin_px`` keeps every footprint that far from the map edges.
    """

    n_objects: int | None = None
    density_per_deg2: float | None = None
    class_fractions: dict[str, float] = field(default_factory=_default_fractions)
    k_scale: float = 3.0
    k_cap: float = 10.0
    k_min: float = 0.0
    overlap_fraction: float = 0.0
    margin_px: int = 64
    max_tries: int = 50
    #: ``k`` (peak = k * local sigma, the paper), ``integrated`` (flux in Jy) or ``peak``
    #: (peak in Jy/beam): how brightness is drawn, and how a catalogue's flux column is read.
    flux_mode: str = "k"
    flux_min_jy: float = 5e-4
    flux_max_jy: float = 1.0
    flux_slope: float = 2.6

    def __post_init__(self) -> None:
        if self.n_objects is not None and self.n_objects < 0:
            raise RadiffError(f"n_objects must be >= 0, got {self.n_objects}")
        if self.density_per_deg2 is not None and not (self.density_per_deg2 >= 0):
            raise RadiffError(f"density_per_deg2 must be >= 0, got {self.density_per_deg2}")
        if not (self.k_scale > 0 and math.isfinite(self.k_scale)):
            raise RadiffError(f"k_scale must be > 0, got {self.k_scale}")
        if not (self.k_cap >= 0 and math.isfinite(self.k_cap)):
            raise RadiffError(f"k_cap must be >= 0, got {self.k_cap}")
        if not (0 <= self.k_min <= self.k_cap):
            raise RadiffError(f"k_min must be in [0, k_cap={self.k_cap}], got {self.k_min}")
        if not (0.0 <= self.overlap_fraction <= 1.0):
            raise RadiffError(f"overlap_fraction must be in [0, 1], got {self.overlap_fraction}")
        if self.margin_px < 0:
            raise RadiffError(f"margin_px must be >= 0, got {self.margin_px}")
        if self.max_tries < 1:
            raise RadiffError(f"max_tries must be >= 1, got {self.max_tries}")
        if self.flux_mode not in FLUX_MODES:
            raise RadiffError(f"flux_mode must be one of {', '.join(FLUX_MODES)}, got {self.flux_mode!r}")
        if not (0 < self.flux_min_jy <= self.flux_max_jy and math.isfinite(self.flux_max_jy)):
            raise RadiffError(f"need 0 < flux_min_jy <= flux_max_jy (finite), got {self.flux_min_jy}, {self.flux_max_jy}")
        if not math.isfinite(self.flux_slope):
            raise RadiffError(f"flux_slope must be a finite number, got {self.flux_slope}")
        self.class_weights()  # validates class_fractions

    def class_weights(self) -> np.ndarray:
        """Normalised weights over ``OBJECT_CLASSES`` (fixed order, whatever the YAML key order)."""
        weights = dict.fromkeys(OBJECT_CLASSES, 0.0)
        seen: dict[SourceClass, str] = {}
        for name, value in self.class_fractions.items():
            try:
                cls = class_from_name(name)
            except RadiffError:
                raise RadiffError(
                    f"class_fractions: unknown class {name!r} "
                    f"(known: {', '.join(c.label for c in OBJECT_CLASSES)})"
                ) from None
            if cls not in weights:
                raise RadiffError(f"class_fractions: {name!r} is not an object class")
            if cls in seen:
                raise RadiffError(f"class_fractions: {name!r} and {seen[cls]!r} name the same class")
            seen[cls] = name
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise RadiffError(f"class_fractions.{name} must be a number, got {value!r}") from None
            if not (value >= 0 and math.isfinite(value)):
                raise RadiffError(f"class_fractions.{name} must be a finite number >= 0, got {value}")
            weights[cls] = value
        w = np.array([weights[c] for c in OBJECT_CLASSES], dtype=np.float64)
        if w.sum() <= 0:
            raise RadiffError("class_fractions: all fractions are zero")
        return w / w.sum()


@dataclass(frozen=True)
class ObjectPlan:
    """One object before placement: its class, brightness and tile-sampling seed.

    Brightness is either ``k`` (peak S/N) or ``flux_jy`` (integrated Jy, or peak Jy/beam in
    ``flux_mode="peak"``); the other one is NaN.
    """

    object_id: int
    class_id: int
    k: float
    seed: int
    flux_jy: float = math.nan


@dataclass(frozen=True)
class PlacedObject:
    """An accepted object; ``row0, col0`` is the map pixel of its tile's [0, 0] (may be < 0)."""

    object_id: int
    class_id: int
    k: float
    seed: int
    row0: int
    col0: int


class Refusal(str, Enum):
    """Why an object could not be placed: the kinds a manifest counts (the reason says the details)."""

    EMPTY = "empty footprint"
    MARGIN = "footprint leaves the margin"
    OUTSIDE = "outside the map"
    OVERLAP = "overlap"
    PROJECTION = "not on the map's projection"


@dataclass(frozen=True)
class UnplacedObject:
    """An object that could not be placed, and why (never dropped silently)."""

    object_id: int
    kind: Refusal
    reason: str


@dataclass
class Placement:
    """The outcome of a placement: accepted objects and refused ones, both in id order."""

    placed: list[PlacedObject] = field(default_factory=list)
    unplaced: list[UnplacedObject] = field(default_factory=list)


def n_objects_for(config: PlacementConfig, map_shape: tuple[int, int], pixel_scale_arcsec: float | None) -> int:
    """The object count: ``n_objects`` if set, else density times the whole map's area."""
    if config.n_objects is not None:
        return int(config.n_objects)
    if config.density_per_deg2 is None:
        raise RadiffError("placement: set n_objects or density_per_deg2")
    if pixel_scale_arcsec is None or not pixel_scale_arcsec > 0:
        raise RadiffError("placement: density_per_deg2 needs the map's pixel scale")
    area_deg2 = map_shape[0] * map_shape[1] * (pixel_scale_arcsec / 3600.0) ** 2
    return int(round(config.density_per_deg2 * area_deg2))


def draw_k(config: PlacementConfig, u: float) -> float:
    """Exponential(scale=k_scale) truncated to [k_min, k_cap], by inverse CDF of ``u`` in [0, 1)."""
    span = config.k_cap - config.k_min
    mass = -math.expm1(-span / config.k_scale)  # P(k_min <= k < k_cap) of the shifted exponential
    k = config.k_min - config.k_scale * math.log1p(-u * mass)
    return min(max(k, config.k_min), config.k_cap)


def draw_flux(config: PlacementConfig, u: float) -> float:
    """dN/dS ~ S^-flux_slope on [flux_min_jy, flux_max_jy], by inverse CDF of ``u`` in [0, 1)."""
    lo, hi, g = config.flux_min_jy, config.flux_max_jy, config.flux_slope
    if abs(g - 1.0) < 1e-12:
        return lo * (hi / lo) ** u
    a, b = lo ** (1.0 - g), hi ** (1.0 - g)
    return min(max((a + u * (b - a)) ** (1.0 / (1.0 - g)), lo), hi)


def plan_objects(
    config: PlacementConfig,
    map_shape: tuple[int, int],
    seed: int,
    pixel_scale_arcsec: float | None = None,
) -> list[ObjectPlan]:
    """Class, k and sampling seed of objects 1..n, each from its own (seed, id) streams.

    Ids start at 1 because 0 means "no object" in the instance map, and the catalogue id
    of an object is its instance id.
    """
    n = n_objects_for(config, map_shape, pixel_scale_arcsec)
    streams = _ObjectStreams(config, seed, n)
    plans = []
    for i in range(1, n + 1):
        k, flux = streams.brightness(i)
        plans.append(ObjectPlan(i, streams.class_id(i), k, streams.tile_seed(i), flux))
    return plans


class _ObjectStreams:
    """Class, k and tile seed of objects 1..n from their (seed, id, purpose) streams, derived
    for all ids at once (:func:`radiff_scale.seeding.derive_uniforms`: the same values as
    one ``derive_rng(seed, id, purpose).random()`` per object, ~100x faster)."""

    def __init__(self, config: PlacementConfig, seed: int, n: int) -> None:
        self.config = config
        ids = np.arange(1, n + 1, dtype=np.uint64)
        cumulative = np.cumsum(config.class_weights())
        idx = np.minimum(np.searchsorted(cumulative, derive_uniforms(seed, ids, "class"), side="right"),
                         len(OBJECT_CLASSES) - 1)
        self._classes = np.asarray([int(c) for c in OBJECT_CLASSES])[idx].tolist()
        self._u_k = derive_uniforms(seed, ids, "k").tolist()
        # The flux stream only in a flux mode: k-mode plans keep the values (and speed) they had.
        self._u_flux = derive_uniforms(seed, ids, "flux").tolist() if config.flux_mode != "k" else None
        self._tiles = derive_seeds(seed, ids, "tile").tolist()

    def class_id(self, object_id: int) -> int:
        return self._classes[object_id - 1]

    def brightness(self, object_id: int) -> tuple[float, float]:
        """(k, flux_jy) as drawn: one of them NaN, by the config's flux_mode."""
        if self._u_flux is None:
            return draw_k(self.config, self._u_k[object_id - 1]), math.nan
        return math.nan, draw_flux(self.config, self._u_flux[object_id - 1])

    def tile_seed(self, object_id: int) -> int:
        return self._tiles[object_id - 1]


def plan_given(
    config: PlacementConfig,
    seed: int,
    class_ids: Sequence[int] | np.ndarray,
    k: Sequence[float] | np.ndarray,
    flux_jy: Sequence[float] | np.ndarray | None = None,
) -> list[ObjectPlan]:
    """Plans for objects given one by one (a catalogue), ids 1..n in the given order.

    A class id < 0 or a NaN ``k``/``flux_jy`` means "not given": that value is drawn from
    the very stream :func:`plan_objects` uses for the same id, so a catalogue that gives
    only positions gets the classes and brightness a random map of the same seed would
    have had. A given flux wins over a given k. Given values are used as they are: a given
    k is not capped at ``k_cap`` (the catalogue is the authority), but it must be finite
    and >= 0, and a given flux finite and > 0.
    """
    class_ids = np.asarray(class_ids, dtype=np.int64)
    k = np.asarray(k, dtype=np.float64)
    flux = np.full(k.shape, np.nan) if flux_jy is None else np.asarray(flux_jy, dtype=np.float64)
    if class_ids.shape != k.shape or flux.shape != k.shape or class_ids.ndim != 1:
        raise ValueError(f"class_ids {class_ids.shape}, k {k.shape} and flux {flux.shape} must be 1-D of one length")
    allowed = {int(c) for c in OBJECT_CLASSES}
    streams = _ObjectStreams(config, seed, len(class_ids))
    plans = []
    for i, (given_class, given_k, given_flux) in enumerate(zip(class_ids.tolist(), k.tolist(), flux.tolist())):
        object_id = i + 1
        if given_class >= 0 and given_class not in allowed:
            raise RadiffError(f"object {object_id}: class id {given_class} is not an object class")
        if not math.isnan(given_k) and not (math.isfinite(given_k) and given_k >= 0):
            raise RadiffError(f"object {object_id}: k must be a finite number >= 0, got {given_k}")
        if not math.isnan(given_flux) and not (math.isfinite(given_flux) and given_flux > 0):
            raise RadiffError(f"object {object_id}: flux must be a finite number > 0, got {given_flux}")
        cls = given_class if given_class >= 0 else streams.class_id(object_id)
        if not math.isnan(given_flux):
            value, flux_value = math.nan, given_flux
        elif not math.isnan(given_k):
            value, flux_value = given_k, math.nan
        else:
            value, flux_value = streams.brightness(object_id)
        plans.append(ObjectPlan(object_id, cls, float(value), streams.tile_seed(object_id), float(flux_value)))
    return plans
