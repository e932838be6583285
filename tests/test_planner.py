"""Planning objects from the seed and placing their footprints without overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radiff_scale.classes import SourceClass
from radiff_scale.compose.placement import place_at, place_objects
from radiff_scale.compose.planner import (
    ObjectPlan,
    PlacementConfig,
    plan_given,
    plan_objects,
)
from radiff_scale.config import from_dict
from radiff_scale.errors import RadiffError

TILE = 128


def ellipse(a: float, b: float, centre: tuple[float, float] = (63.5, 63.5), size: int = TILE) -> np.ndarray:
    """Boolean ellipse with semi-axes a (rows) and b (cols) on a size x size tile."""
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    return ((rows - centre[0]) / a) ** 2 + ((cols - centre[1]) / b) ** 2 <= 1.0


def random_footprints(n: int, seed: int = 0, lo: float = 3.0, hi: float = 12.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = rng.uniform(lo, hi, size=2)
        centre = tuple(rng.uniform(30, 98, size=2))
        out.append(ellipse(a, b, centre))
    return out


def replay(placement, footprints, map_shape) -> list[tuple[int, float]]:
    """Paint accepted footprints on a full occupancy array in id order; return (new hits, overlap fraction)."""
    occupied = np.zeros(map_shape, dtype=np.int32)
    out = []
    for obj in placement.placed:
        fp = footprints[obj.object_id]
        rr, cc = np.nonzero(fp)
        rr = rr + obj.row0
        cc = cc + obj.col0
        frac = float(np.count_nonzero(occupied[rr, cc])) / rr.size
        occupied[rr, cc] += 1
        out.append((obj.object_id, frac))
    return out, occupied


# --- plan ---------------------------------------------------------------------------------


def test_plan_is_deterministic_and_prefix_stable():
    shape = (4096, 4096)
    small = plan_objects(PlacementConfig(n_objects=10), shape, seed=11)
    large = plan_objects(PlacementConfig(n_objects=100), shape, seed=11)
    assert small == large[:10]
    assert small == plan_objects(PlacementConfig(n_objects=10), shape, seed=11)
    assert [p.object_id for p in large] == list(range(1, 101))
    other = plan_objects(PlacementConfig(n_objects=10), shape, seed=12)
    assert [p.k for p in other] != [p.k for p in small]
    assert len({p.seed for p in large}) == 100


def test_k_stays_in_bounds():
    cfg = PlacementConfig(n_objects=500, k_min=0.5, k_cap=4.0)
    ks = np.array([p.k for p in plan_objects(cfg, (1000, 1000), seed=3)])
    assert ks.min() >= 0.5 and ks.max() <= 4.0
    assert ks.max() > 3.5  # the whole range is used, not a point mass


def test_k_mean_is_the_scale_when_uncapped_and_truncated_mean_when_capped():
    n = 4000
    uncapped = np.array([p.k for p in plan_objects(PlacementConfig(n_objects=n, k_cap=1e9), (10, 10), seed=5)])
    assert abs(uncapped.mean() - 3.0) < 5 * 3.0 / math.sqrt(n)
    capped = np.array([p.k for p in plan_objects(PlacementConfig(n_objects=n), (10, 10), seed=5)])
    # Mean of an exponential (scale 3) truncated to [0, 10].
    expected = 3.0 - 10.0 * math.exp(-10 / 3) / (1 - math.exp(-10 / 3))
    assert capped.max() <= 10.0
    assert abs(capped.mean() - expected) < 5 * capped.std() / math.sqrt(n)


def test_class_fractions_are_honoured_and_aliases_accepted():
    n = 4000
    cfg = PlacementConfig(n_objects=n, class_fractions={"source": 5, "galaxy": 3, "sidelobe": 0})
    counts = np.bincount([p.class_id for p in plan_objects(cfg, (10, 10), seed=9)], minlength=4)
    assert counts[SourceClass.SPURIOUS] == 0 and counts[SourceClass.BACKGROUND] == 0
    for cls, frac in ((SourceClass.COMPACT, 5 / 8), (SourceClass.EXTENDED, 3 / 8)):
        assert abs(counts[cls] - n * frac) < 5 * math.sqrt(n * frac * (1 - frac))


def test_class_fraction_key_order_does_not_change_the_plan():
    a = PlacementConfig(n_objects=50, class_fractions={"compact": 0.6, "extended": 0.3, "spurious": 0.1})
    b = PlacementConfig(n_objects=50, class_fractions={"spurious": 0.1, "extended": 0.3, "compact": 0.6})
    assert plan_objects(a, (10, 10), 1) == plan_objects(b, (10, 10), 1)


def test_given_plans_draw_only_what_is_missing_from_the_random_streams():
    cfg = PlacementConfig(n_objects=6)
    random = plan_objects(cfg, (10, 10), seed=4)
    given = plan_given(cfg, 4, [-1, 3, -1, 1, -1, 2], [np.nan, np.nan, 9.5, 0.0, 12.0, np.nan])
    assert [p.object_id for p in given] == [1, 2, 3, 4, 5, 6]
    assert [p.seed for p in given] == [p.seed for p in random]  # the same tiles for the same ids
    assert [p.class_id for p in given] == [random[0].class_id, 3, random[2].class_id, 1, random[4].class_id, 2]
    assert [p.k for p in given] == [random[0].k, random[1].k, 9.5, 0.0, 12.0, random[5].k]  # 12 > k_cap: given wins


@pytest.mark.parametrize(("classes", "ks", "message"), [([0], [1.0], "class id 0"), ([5], [1.0], "class id 5"),
                                                          ([2], [-1.0], "k must be"), ([2], [np.inf], "k must be")])
def test_given_plans_refuse_bad_values(classes, ks, message):
    with pytest.raises(RadiffError, match=message):
        plan_given(PlacementConfig(), 0, classes, ks)


def test_density_gives_count_from_map_area():
    cfg = PlacementConfig(density_per_deg2=1000.0)
    # 3600 x 3600 px at 1"/px is exactly one square degree.
    assert len(plan_objects(cfg, (3600, 3600), seed=1, pixel_scale_arcsec=1.0)) == 1000
    with pytest.raises(RadiffError, match="pixel scale"):
        plan_objects(cfg, (3600, 3600), seed=1)
    both = PlacementConfig(n_objects=7, density_per_deg2=1000.0)
    assert len(plan_objects(both, (3600, 3600), seed=1, pixel_scale_arcsec=1.0)) == 7


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"k_cap": -1.0}, "k_cap"),
        ({"overlap_fraction": 1.5}, "overlap_fraction"),
        ({"overlap_fraction": -0.1}, "overlap_fraction"),
        ({"class_fractions": {"compact": -1.0}}, "compact"),
        ({"class_fractions": {"compact": 0.0, "extended": 0.0}}, "class_fractions"),
        ({"class_fractions": {"quasar": 1.0}}, "quasar"),
        ({"class_fractions": {"compact": "lots"}}, "compact"),
        ({"class_fractions": {"background": 1.0}}, "background"),
        ({"k_scale": 0.0}, "k_scale"),
        ({"max_tries": 0}, "max_tries"),
    ],
)
def test_bad_config_is_a_user_error_naming_the_key(kwargs, key):
    with pytest.raises(RadiffError, match=key):
        PlacementConfig(**kwargs)
    with pytest.raises(RadiffError, match=key):
        from_dict(PlacementConfig, kwargs)


# --- placement ----------------------------------------------------------------------------


def _plans(n: int) -> list[ObjectPlan]:
    return [ObjectPlan(i, int(SourceClass.COMPACT), 1.0, 1000 + i) for i in range(n)]


def test_no_overlap_and_margin_honoured():
    shape, n, margin = (600, 500), 120, 20
    fps = random_footprints(n, seed=1)
    cfg = PlacementConfig(overlap_fraction=0.0, margin_px=margin, max_tries=30)
    placement = place_objects(_plans(n), fps, shape, cfg, seed=4)
    assert len(placement.placed) > n // 2
    assert sorted([o.object_id for o in placement.placed] + [u.object_id for u in placement.unplaced]) == list(range(n))
    _, occupied = replay(placement, fps, shape)
    assert occupied.max() == 1
    inner = np.zeros(shape, dtype=bool)
    inner[margin:-margin, margin:-margin] = True
    assert not np.any(occupied[~inner])
    assert occupied.sum() == sum(int(fps[o.object_id].sum()) for o in placement.placed)


def test_partial_overlap_allowed_but_never_above_the_limit():
    shape, n = (256, 256), 80
    fps = [ellipse(18, 14)] * n
    cfg = PlacementConfig(overlap_fraction=0.5, margin_px=0, max_tries=40)
    placement = place_objects(_plans(n), fps, shape, cfg, seed=8)
    fractions = [f for _, f in replay(placement, fps, shape)[0]]
    assert max(fractions) <= 0.5
    assert max(fractions) > 0.0  # crowded enough that some overlap was actually accepted
    assert placement.unplaced  # and some objects were refused


def test_objects_that_cannot_fit_are_reported():
    fps = [ellipse(10, 10), ellipse(60, 60), np.zeros((TILE, TILE), bool), ellipse(10, 10)]
    cfg = PlacementConfig(margin_px=10, max_tries=20)
    placement = place_objects(_plans(4), fps, (100, 100), cfg, seed=2)
    reasons = {u.object_id: u.reason for u in placement.unplaced}
    assert "margin" in reasons[1]
    assert "empty" in reasons[2]
    assert {o.object_id for o in placement.placed} | set(reasons) == {0, 1, 2, 3}
    # A 21x21 disc alone in an 80x80 box always fits, so object 0 is placed.
    assert 0 in {o.object_id for o in placement.placed}


def test_crowded_map_reports_every_leftover():
    n = 30
    fps = [ellipse(20, 20)] * n
    placement = place_objects(_plans(n), fps, (128, 128), PlacementConfig(margin_px=0, max_tries=10), seed=0)
    assert 1 <= len(placement.placed) <= 9  # at most 9 discs of diameter 41 in 128x128
    assert len(placement.placed) + len(placement.unplaced) == n
    assert all("tries" in u.reason for u in placement.unplaced)


def test_placement_is_deterministic_and_in_id_order():
    n = 40
    fps = random_footprints(n, seed=3)
    plans = _plans(n)
    cfg = PlacementConfig(margin_px=5)
    a = place_objects(plans, fps, (300, 300), cfg, seed=6)
    b = place_objects(plans[::-1], fps[::-1], (300, 300), cfg, seed=6)
    assert a == b
    assert [o.object_id for o in a.placed] == sorted(o.object_id for o in a.placed)
    assert a != place_objects(plans, fps, (300, 300), cfg, seed=7)


def test_huge_map_does_not_allocate_the_map():
    # A full-map occupancy array of 1e6 x 1e6 pixels would need 125 GB even packed.
    fps = random_footprints(5, seed=4)
    placement = place_objects(_plans(5), fps, (1_000_000, 1_000_000), PlacementConfig(), seed=1)
    assert len(placement.placed) == 5


def test_place_at_puts_centroids_at_positions_and_refuses_overlaps():
    fps = [ellipse(6, 9, (40.0, 70.0)), ellipse(5, 5), ellipse(8, 3, (90.0, 20.0)), ellipse(5, 5)]
    positions = [(100.0, 120.3), (100.4, 121.0), (200.2, 60.7), (5.0, 5.0)]
    placement = place_at(_plans(4), fps, positions, (300, 300), PlacementConfig(margin_px=10))
    placed = {o.object_id: o for o in placement.placed}
    reasons = {u.object_id: u.reason for u in placement.unplaced}
    assert set(placed) == {0, 2}
    assert "overlap" in reasons[1]
    assert "margin" in reasons[3]
    for i in placed:
        rr, cc = np.nonzero(fps[i])
        centroid = (rr.mean() + placed[i].row0, cc.mean() + placed[i].col0)
        assert abs(centroid[0] - positions[i][0]) <= 0.5 and abs(centroid[1] - positions[i][1]) <= 0.5


def test_place_at_allows_overlap_up_to_the_limit():
    fps = [ellipse(10, 10), ellipse(10, 10)]
    # Two discs of radius 10 with centres 10 px apart share ~39% of their area.
    positions = [(100.0, 100.0), (100.0, 110.0)]
    strict = place_at(_plans(2), fps, positions, (300, 300), PlacementConfig())
    loose = place_at(_plans(2), fps, positions, (300, 300), PlacementConfig(overlap_fraction=0.5))
    assert [o.object_id for o in strict.placed] == [0]
    assert [o.object_id for o in loose.placed] == [0, 1]


def test_place_at_reports_positions_off_the_map_without_touching_the_rest():
    fps = [ellipse(3, 3)] * 5
    # Pixel centres are whole numbers: the map covers [-0.5, 299.5) on each axis.
    positions = [(150.0, -0.6), (300.0, 150.0), (np.nan, 10.0), (150.0, 150.0), (-0.5, 299.4)]
    placement = place_at(_plans(5), fps, positions, (300, 300), PlacementConfig(margin_px=0))
    reasons = {u.object_id: u.reason for u in placement.unplaced}
    assert [o.object_id for o in placement.placed] == [3]
    assert "outside the 300x300 map" in reasons[0] and "x=-0.6" in reasons[0]
    assert "outside" in reasons[1] and "not finite" in reasons[2]
    assert "outside" not in reasons[4] and "margin" in reasons[4]  # on the map, but its footprint is not


def test_place_at_rejects_wrong_number_of_positions():
    with pytest.raises(RadiffError, match="positions"):
        place_at(_plans(2), [ellipse(5, 5)] * 2, [(1.0, 2.0)], (300, 300), PlacementConfig())
