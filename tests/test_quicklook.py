"""The quick-look PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from radiff_scale.classes import CLASS_COLOURS, SourceClass
from radiff_scale.compose.mosaic import create_mosaic
from radiff_scale.compose.quicklook import (
    QuicklookCanvas,
    asinh_stretch,
    outline_pixels,
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
    grey = rgb[..., 0] == rgb[..., 1]
    assert grey.mean() > 0.8  # outlines only, not filled regions


def test_quicklook_without_outlines_is_greyscale(mosaic, tmp_path):
    out = write_quicklook(mosaic, tmp_path / "g.png", max_size=1000, outlines=False)
    with Image.open(out) as im:
        assert im.mode == "L" and im.size == (200, 300)  # smaller than max_size: factor 1
        grey = np.asarray(im)
    image = mosaic.array("image")[:]
    assert grey[image > 10].mean() > grey[image < 1].mean() + 100  # sources bright on the noise
    with pytest.raises(RadiffError):
        write_quicklook(mosaic, tmp_path / "x.png", max_size=0)


def test_downsample_mean_and_max_match_numpy(mosaic):
    image = mosaic.array("image")[:].astype(np.float64)
    small, classes = mosaic_canvas(mosaic, 7).reduced()  # 7 does not divide the chunk: windows cross chunks
    assert small.shape == classes.shape == (43, 29)
    for i, j in [(0, 0), (18, 18), (42, 28), (10, 28)]:
        assert small[i, j] == pytest.approx(image[i * 7 : i * 7 + 7, j * 7 : j * 7 + 7].mean())
    full_classes = mosaic.array("class")[:]
    assert classes[150 // 7, 20 // 7] == SourceClass.SPURIOUS
    assert classes[18, 18] == full_classes[126:133, 126:133].max()  # a window across four chunks


def test_stretch_and_outline_helpers():
    image = np.linspace(-1, 10, 1000).reshape(10, 100)
    grey = asinh_stretch(image)
    assert grey.dtype == np.uint8 and grey.min() == 0 and grey.max() == 255
    assert np.all(np.diff(grey.ravel().astype(int)) >= 0)  # monotonic
    assert asinh_stretch(np.zeros((4, 4))).shape == (4, 4)
    classes = np.zeros((7, 7), np.uint8)
    classes[1:6, 1:6] = 2
    edge = outline_pixels(classes)
    assert edge[1, 1] and edge[1, 3] and not edge[3, 3] and not edge[0, 0]
    assert edge.sum() == 16


def test_block_mean_ignores_nan_pixels_in_aligned_and_ragged_windows():
    from radiff_scale.compose.mosaic import ChunkBounds
    from radiff_scale.compose.quicklook import QuicklookCanvas

    window = np.arange(64, dtype=np.float32).reshape(8, 8)
    window[1, 2] = np.nan
    expected = np.nanmean(window.astype(np.float64).reshape(2, 4, 2, 4), axis=(1, 3))
    canvas = QuicklookCanvas((8, 8), 4)
    canvas.add(reduce_chunk(window, np.zeros((8, 8), np.uint8), ChunkBounds(0, 0, 0, 8, 0, 8), 4))
    assert np.allclose(canvas.reduced()[0], expected)
    ragged = QuicklookCanvas((8, 7), 4)
    ragged.add(reduce_chunk(window[:, :7], np.zeros((8, 7), np.uint8), ChunkBounds(0, 0, 0, 8, 0, 7), 4))
    small = ragged.reduced()[0]
    assert small.shape == (2, 2) and np.isfinite(small).all()
    assert small[0, 1] == pytest.approx(np.nanmean(window[:4, 4:7].astype(np.float64)))
    blank = QuicklookCanvas((4, 4), 4)
    blank.add(reduce_chunk(np.full((4, 4), np.nan, np.float32), np.zeros((4, 4), np.uint8), ChunkBounds(0, 0, 0, 4, 0, 4), 4))
    assert np.isnan(blank.reduced()[0]).all()  # a window with no finite pixel is blank, not 0


def test_reduced_map_does_not_depend_on_the_order_chunks_arrive(mosaic):
    from radiff_scale.compose.quicklook import QuicklookCanvas

    grid = mosaic.chunk_grid()
    pieces = [reduce_chunk(mosaic.array("image")[b.slices], mosaic.array("class")[b.slices], b, 7) for b in grid]
    a, b = QuicklookCanvas(SHAPE, 7), QuicklookCanvas(SHAPE, 7)
    for p in pieces:
        a.add(p)
    for p in reversed(pieces):
        b.add(p)
    for x, y in zip(a.reduced(), b.reduced()):
        assert x.tobytes() == y.tobytes()
