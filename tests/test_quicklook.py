"""The quick-look PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from radiff_scale.classes import CLASS_COLOURS, SourceClass
from radiff_scale.compose.mosaic import create_mosaic
from radiff_scale.compose.quicklook import (
    DisplayLevels,
    QuicklookCanvas,
    asinh_stretch,
    display_levels,
    outline_classes,
    quicklook_factor,
    reduce_chunk,
    save_quicklook,
)
from radiff_scale.errors import RadiffError

SHAPE = (300, 200)


def mosaic_canvas(mosaic, factor):
    """The export stage's quick-look path in one process: every chunk reduced, pieces added in order."""
    canvas = QuicklookCanvas(mosaic.shape, factor)
    for bounds in mosaic.chunk_grid():
        canvas.add(reduce_chunk(mosaic.array("image")[bounds.slices], mosaic.array("class")[bounds.slices],
                                bounds, factor))
    return canvas


def write_quicklook(mosaic, out, max_size, outlines=True):
    return save_quicklook(mosaic_canvas(mosaic, quicklook_factor(mosaic.shape, max_size)), out, outlines)


@pytest.fixture()
def mosaic(tmp_path):
    m = create_mosaic(tmp_path / "m.zarr", SHAPE, chunk=128)
    rng = np.random.default_rng(0)
    image = rng.standard_normal(SHAPE).astype(np.float32)
    classes = np.zeros(SHAPE, np.uint8)
    classes[40:80, 30:90] = SourceClass.EXTENDED
    classes[200:230, 120:150] = SourceClass.COMPACT
    classes[150, 20] = SourceClass.SPURIOUS  # one pixel: must survive 5x downsampling
    image[classes > 0] += 20.0
    m.array("image", mode="r+")[:] = image
    m.array("class", mode="r+")[:] = classes
    return m


def test_quicklook_png_size_mode_and_outlines(mosaic, tmp_path):
    out = write_quicklook(mosaic, tmp_path / "ql" / "map.png", max_size=64)
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.png"]  # no temp file left
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == (40, 60)  # factor ceil(300 / 64) = 5: width 200/5, height 300/5
        rgb = np.asarray(im)
    for cls in (SourceClass.SPURIOUS, SourceClass.COMPACT, SourceClass.EXTENDED):
        colour = np.array(CLASS_COLOURS[cls], dtype=np.uint8)
        assert np.all(rgb == colour, axis=-1).any(), cls
    grey = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])
    assert grey.mean() > 0.8  # outlines only, not filled regions
    # the outline goes around an object, not over it: the one-pixel source (150, 20) is still
    # seen, grey and bright, inside a ring of red 2 px away
    assert grey[29:32, 3:6].all() and rgb[30, 4, 0] > 200
    red = np.all(rgb == CLASS_COLOURS[SourceClass.SPURIOUS], axis=-1)
    assert red[28, 2:7].all() and red[32, 2:7].all() and red[28:33, 2].all() and red[28:33, 6].all()


def test_quicklook_without_outlines_is_greyscale(mosaic, tmp_path):
    out = write_quicklook(mosaic, tmp_path / "g.png", max_size=1000, outlines=False)
    with Image.open(out) as im:
        assert im.mode == "L" and im.size == (200, 300)  # smaller than max_size: factor 1
        grey = np.asarray(im)
    image = mosaic.array("image")[:]
    assert grey[image > 10].mean() > grey[image < 1].mean() + 100  # sources bright on the noise
    with pytest.raises(RadiffError):
        write_quicklook(mosaic, tmp_path / "x.png", max_size=0)


def test_downsample_max_matches_numpy(mosaic):
    image = mosaic.array("image")[:]
    small, classes = mosaic_canvas(mosaic, 7).reduced()  # 7 does not divide the chunk: windows cross chunks
    assert small.shape == classes.shape == (43, 29)
    for i, j in [(0, 0), (18, 18), (42, 28), (10, 28)]:
        assert small[i, j] == image[i * 7 : i * 7 + 7, j * 7 : j * 7 + 7].max()  # exact: a max adds nothing
    full_classes = mosaic.array("class")[:]
    assert classes[150 // 7, 20 // 7] == SourceClass.SPURIOUS
    assert classes[18, 18] == full_classes[126:133, 126:133].max()  # a window across four chunks


def test_stretch_and_outline_helpers():
    image = np.linspace(-1, 10, 1000).reshape(10, 100)
    levels = DisplayLevels(centre=0.0, sigma=0.5, black=-0.5, white=9.0, softening=2.0)
    grey = asinh_stretch(image, levels)
    assert grey.dtype == np.uint8 and grey.min() == 0 and grey.max() == 255
    assert np.all(grey[image <= -0.5] == 0) and np.all(grey[image >= 9.0] == 255)
    assert np.all(np.diff(grey.ravel().astype(int)) >= 0)  # monotonic
    assert asinh_stretch(np.zeros((4, 4))).shape == (4, 4)
    assert not asinh_stretch(np.full((3, 3), np.nan)).any()  # blank is black
    classes = np.zeros((9, 9), np.uint8)
    classes[2:7, 2:7] = 2
    ring = outline_classes(classes)
    assert ring.dtype == np.uint8 and not ring[1:8, 1:8].any()  # nothing on the object, nor next to it
    assert np.all(ring[0] == 2) and np.all(ring[8] == 2) and np.all(ring[:, 0] == 2) and np.all(ring[:, 8] == 2)
    dots = np.zeros((7, 9), np.uint8)
    dots[3, 3], dots[3, 7] = SourceClass.SPURIOUS, SourceClass.EXTENDED
    ring = outline_classes(dots)
    assert not ring[2:5, 2:5].any() and np.all(ring[1, 1:5] == SourceClass.SPURIOUS)  # a closed ring, a gap inside
    assert np.all(ring[1:6, 5] == SourceClass.EXTENDED)  # 2 px from both: the larger id
    assert (ring > 0).sum() == 16 + 11 - 5  # two rings sharing a column; the map's edge cuts the second


def test_block_max_ignores_nan_pixels_in_aligned_and_ragged_windows():
    from radiff_scale.compose.mosaic import ChunkBounds

    window = np.arange(64, dtype=np.float32).reshape(8, 8)
    window[3, 3] = np.nan  # the largest pixel of the first window
    expected = np.nanmax(window.reshape(2, 4, 2, 4), axis=(1, 3))
    assert expected[0, 0] == 26
    canvas = QuicklookCanvas((8, 8), 4)
    canvas.add(reduce_chunk(window, np.zeros((8, 8), np.uint8), ChunkBounds(0, 0, 0, 8, 0, 8), 4))
    assert np.array_equal(canvas.reduced()[0], expected)
    ragged = QuicklookCanvas((8, 7), 4)
    ragged.add(reduce_chunk(window[:, :7], np.zeros((8, 7), np.uint8), ChunkBounds(0, 0, 0, 8, 0, 7), 4))
    small = ragged.reduced()[0]
    assert small.shape == (2, 2) and np.isfinite(small).all()
    assert small[0, 1] == np.nanmax(window[:4, 4:7])  # the padding column never wins
    negative = QuicklookCanvas((4, 3), 4)  # ... not even over a window of negative pixels
    negative.add(reduce_chunk(-np.ones((4, 3), np.float32), np.zeros((4, 3), np.uint8), ChunkBounds(0, 0, 0, 4, 0, 3), 4))
    assert negative.reduced()[0][0, 0] == -1
    blank = QuicklookCanvas((4, 4), 4)
    blank.add(reduce_chunk(np.full((4, 4), np.nan, np.float32), np.zeros((4, 4), np.uint8), ChunkBounds(0, 0, 0, 4, 0, 4), 4))
    assert np.isnan(blank.reduced()[0]).all()  # a window with no finite pixel is blank, not -inf or 0


def test_reduced_map_does_not_depend_on_the_order_chunks_arrive(mosaic):
    grid = mosaic.chunk_grid()
    pieces = [reduce_chunk(mosaic.array("image")[b.slices], mosaic.array("class")[b.slices], b, 7) for b in grid]
    a, b = QuicklookCanvas(SHAPE, 7), QuicklookCanvas(SHAPE, 7)
    for p in pieces:
        a.add(p)
    for p in reversed(pieces):
        b.add(p)
    for x, y in zip(a.reduced(), b.reduced()):
        assert x.tobytes() == y.tobytes()


#: Peaks of the compact sources of :func:`radio_field`, in sigmas of its noise.
PEAKS = (5.0, 10.0, 30.0, 100.0)


def radio_field(shape=(512, 512), beam_sigma=1.5, seed=1):
    """Beam-correlated noise of sigma 1 and one compact (beam-sized) source per PEAKS entry.

    Each source peaks on a pixel at the corner of a 4x4 window, the worst case for a block
    mean (a quarter of the source falls in the peak's window).
    """
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), beam_sigma)
    image = noise / noise.std()
    classes = np.zeros(shape, np.uint8)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    centres = [(100 + 100 * i, 64 + 120 * (i % 2)) for i in range(len(PEAKS))]
    for peak, (r, c) in zip(PEAKS, centres):
        d2 = (rows - r) ** 2 + (cols - c) ** 2
        image += peak * np.exp(-d2 / (2 * beam_sigma**2))
        classes[d2 <= (2 * beam_sigma) ** 2] = SourceClass.COMPACT
    return image.astype(np.float32), classes, centres


def test_sources_stand_out_of_the_noise_at_a_reduction_of_4(tmp_path):
    """A few-sigma source is well above the noise, bright ones are not flat white, the noise is not saturated.

    The old quick-look (block mean, asinh between the 0.5 and 99.8th percentiles) fails
    every clause: the 99.8th percentile is ~3 sigma, so the noise's top pixels are white like
    the sources, and the mean of a 4x4 window dilutes a 5-sigma compact source into the noise.
    """
    image, classes, centres = radio_field()
    m = create_mosaic(tmp_path / "field.zarr", image.shape, chunk=128)
    m.array("image", mode="r+")[:] = image
    m.array("class", mode="r+")[:] = classes
    out = write_quicklook(m, tmp_path / "field.png", max_size=128, outlines=False)  # factor 4
    with Image.open(out) as im:
        grey = np.asarray(im).astype(int)
    assert grey.shape == (128, 128)
    source = [grey[r // 4, c // 4] for r, c in centres]
    far = ndimage.binary_dilation(classes[::4, ::4] > 0, iterations=3) == 0
    noise = grey[far]
    p99 = np.percentile(noise, 99)
    assert source[0] > p99 + 15 and source[1] > p99 + 40, (source, p99)  # 5 and 10 sigma: clearly above
    assert source == sorted(source) and len(set(source)) == len(source)  # brighter is whiter ...
    assert source[2] < 235 and source[3] >= 240  # ... and only the brightest is about white
    assert (noise == 255).sum() == 0 and (noise == 0).mean() < 0.05  # noise: not saturated either way
    assert 10 < np.median(noise) < 120  # a dark texture, not black


def test_display_levels_are_in_units_of_the_noise():
    rng = np.random.default_rng(2)
    noise = rng.standard_normal((400, 400))
    levels = display_levels(noise * 3.0 + 7.0)
    assert levels.centre == pytest.approx(7.0, abs=0.05) and levels.sigma == pytest.approx(3.0, rel=0.02)
    assert levels.black == pytest.approx(levels.centre - 2 * levels.sigma)
    assert levels.white == pytest.approx(levels.centre + 10 * levels.sigma)  # no source: the floor
    assert levels.softening == pytest.approx(5 * levels.sigma)
    noise[10, 10:13] = [40.0, 50.0, 60.0]  # sources set white, near the brightest
    assert 55 < display_levels(noise).white <= 60
    # the same picture in Jy/beam or in sigmas (a power-of-2 scale is exact)
    assert np.array_equal(asinh_stretch(noise), asinh_stretch(noise * 2.0**-13))
    assert display_levels(np.full((8, 8), 2.0)).sigma > 0  # a flat map still has a grey scale
