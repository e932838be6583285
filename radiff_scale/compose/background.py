"""Background maps that can be read one window at a time.

A composed map can be far larger than memory, so nothing here ever materialises a
whole background: chunk owners, the sigma map and the catalogue each read just the
window they need. The one rule every source obeys is that a pixel's value does not
depend on the window it was read through, which is what lets fifty workers and one
worker produce the same bytes.
"""

from __future__ import annotations

import math
import os
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from astropy.io import fits
from scipy import fft as sp_fft

from radiff_scale.compose.wcs import MapGeometry, find_image_hdu, image_shape, open_fits
from radiff_scale.errors import RadiffError
from radiff_scale.fits_header import read_map_unit, unit_scale
from radiff_scale.fits_types import STORED_DTYPES


@runtime_checkable
class BackgroundSource(Protocol):
    """Anything with a (rows, cols) ``shape`` that returns float32 Jy/beam windows.

    ``read`` returns a new array that the caller owns: a chunk owner paints its stamps
    straight into it rather than paying for a copy of every chunk.
    """

    @property
    def shape(self) -> tuple[int, int]: ...

    def read(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray: ...


def check_window(shape: tuple[int, int], row0: int, row1: int, col0: int, col1: int) -> None:
    """Reject windows outside the map: a caller bug, so an ordinary exception."""
    rows, cols = shape
    if not (0 <= row0 <= row1 <= rows and 0 <= col0 <= col1 <= cols):
        raise ValueError(f"window rows [{row0},{row1}) cols [{col0},{col1}) is outside the map {shape}")


class FitsBackground:
    """A real map on disk, read window by window with positioned reads.

    Blank (NaN/inf) pixels become 0 so that stamps added on top stay finite; how many
    there were is kept in ``nan_count`` for the manifest. Integer maps are scaled with
    their BSCALE/BZERO per window (astropy would scale the whole map on first access)
    and mJy/beam maps are converted to Jy/beam.

    Windows of an uncompressed image are read with ``os.preadv`` straight from the file,
    row by row (whole row bands in one call), not through a memory map: a memory map
    keeps every page it ever touched in the process's resident set, so scanning a
    32768^2 map for blanks left the driver at 5 GB RSS and each chunk owner grew by
    every chunk it read. Tile-compressed images go through astropy's ``section``, which
    decompresses only the tiles under the window.
    """

    def __init__(self, path: str | Path, scan_rows: int | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._hdul = None
        with open_fits(self.path, do_not_scale_image_data=True) as hdul:
            self._hdu_index = find_image_hdu(hdul, self.path)
            hdu = hdul[self._hdu_index]
            header = hdu.header
            self._shape = image_shape(header, self.path)
            self._naxis = int(header["NAXIS"])
            self.unit = read_map_unit(header)
            self.unit_scale = unit_scale(self.unit, self.path)
            self._bscale = float(header.get("BSCALE", 1.0))
            self._bzero = float(header.get("BZERO", 0.0))
            bitpix = int(header["BITPIX"])  # a compressed HDU's header is its image's
            if bitpix not in STORED_DTYPES:
                raise RadiffError(f"{self.path}: BITPIX = {bitpix} is not a FITS pixel type "
                                  f"(one of {', '.join(map(str, STORED_DTYPES))})")
            self._blank = header.get("BLANK") if bitpix > 0 else None
            # Byte offset of the pixels (None: compressed, read through astropy).
            self._offset = None if isinstance(hdu, fits.CompImageHDU) else int(hdul.fileinfo(self._hdu_index)["datLoc"])
        self._dtype = np.dtype(STORED_DTYPES[bitpix])
        self._trivial = self._bscale == 1.0 and self._bzero == 0.0 and self._blank is None and self.unit_scale == 1.0
        self.nan_count = self._count_blank(scan_rows)
        if self.nan_count == self._shape[0] * self._shape[1]:
            raise RadiffError(f"{self.path}: every pixel of the map is blank (NaN)")

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    def _raw_window(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        """Stored values of a window, in the file's dtype (big-endian), as a new array."""
        if self._offset is None:
            with self._lock:
                if self._hdul is None:
                    self._hdul = open_fits(self.path, do_not_scale_image_data=True)
                section = self._hdul[self._hdu_index].section
                index = (0,) * (self._naxis - 2) + (slice(row0, row1), slice(col0, col1))
                return np.array(section[index], dtype=self._dtype)
        if self._fd is None:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY)
        cols = self._shape[1]
        item = self._dtype.itemsize
        out = np.empty((row1 - row0, col1 - col0), dtype=self._dtype)
        if out.size == 0:
            return out
        if col0 == 0 and col1 == cols:  # whole rows: one contiguous read
            self._read_into(out, self._offset + row0 * cols * item)
        else:
            for i, row in enumerate(range(row0, row1)):
                self._read_into(out[i], self._offset + (row * cols + col0) * item)
        return out

    def _read_into(self, target: np.ndarray, offset: int) -> None:
        view = memoryview(target).cast("B")
        done = 0
        while done < len(view):
            n = os.preadv(self._fd, [view[done:]], offset + done)
            if n <= 0:
                raise RadiffError(f"{self.path}: file ends before the image data does (truncated FITS?)")
            done += n

    def _count_blank(self, scan_rows: int | None) -> int:
        """Blank pixels in the whole map, scanned in row bands so memory stays bounded."""
        rows, cols = self._shape
        step = scan_rows or max(1, (16 << 20) // max(cols, 1))
        total = 0
        for r0 in range(0, rows, step):
            band = self._convert(self._raw_window(r0, min(rows, r0 + step), 0, cols))
            total += int(np.count_nonzero(~np.isfinite(band)))
        return total

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        """Physical Jy/beam values of a raw window, blanks as NaN (float64 unless trivial)."""
        if self._trivial and raw.dtype.kind == "f":
            return raw.astype(np.float32)
        out = raw.astype(np.float64)
        if self._blank is not None:
            out[raw == self._blank] = np.nan
        return (out * self._bscale + self._bzero) * self.unit_scale

    def read(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        check_window(self._shape, row0, row1, col0, col1)
        out = np.asarray(self._convert(self._raw_window(row0, row1, col0, col1)), dtype=np.float32)
        out[~np.isfinite(out)] = 0.0
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        if self._hdul is not None:
            self._hdul.close()
        self._fd, self._hdul = None, None

    def __enter__(self) -> FitsBackground:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        # A file descriptor and a lock do not travel to another process; reopen there.
        state = self.__dict__.copy()
        state.update(_fd=None, _hdul=None, _lock=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _pair(a: int, b: int) -> int:
    """Szudzik's pairing of two non-negative ints: a tile's seed index that ignores the map size."""
    return a * a + a + b if a >= b else a + b * b


def _zigzag(n: int) -> int:
    """0, -1, 1, -2, 2, ... -> 0, 1, 2, 3, 4, ...: tiles left of / above the map get seeds too."""
    return 2 * n if n >= 0 else -2 * n - 1


#: Kernel transforms by (kernel bytes, rms, FFT shape), shared by every SyntheticBackground
#: of a worker process. A chunk owner gets a freshly unpickled background per task (its
#: own caches empty), and would otherwise redo a full-size FFT per block shape per task.
#: Bounded: a map has at most four block shapes, so 16 entries cover a few maps.
_KERNEL_FT_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_KERNEL_FT_CACHE_SIZE = 16
_KERNEL_FT_LOCK = threading.Lock()

NOISE_TILE = 128
"""Side of a white-noise tile. Part of the seeding scheme: changing it changes every map.

Small enough that an output block's halo of a few pixels costs a sliver of extra draws
(not a whole neighbouring block), big enough that positioning a tile's stream (~5 us)
is nothing next to drawing its 16k normals."""

NOISE_STRIDE_BITS = 40
"""Tile streams start 2**40 draws apart on one PCG64DXSM sequence (a tile draws ~2**14).
Part of the seeding scheme, like NOISE_TILE."""


def _noise_base_state(seed: int) -> dict:
    """State of the map's one noise sequence: PCG64DXSM seeded by SeedSequence([seed, crc32("noise")])."""
    return np.random.PCG64DXSM(np.random.SeedSequence([int(seed), zlib.crc32(b"noise")])).state


class _TileMemo:
    """White-noise tiles drawn during one read, and the generator that draws them (one per
    read, so concurrent reads of one background never share generator state)."""

    def __init__(self) -> None:
        self.tiles: dict[tuple[int, int], np.ndarray] = {}
        self.generator = np.random.Generator(np.random.PCG64DXSM())


def paste_blocks(out: np.ndarray, row0: int, col0: int, size: int,
                 block: Callable[[int, int], np.ndarray]) -> Iterator[int]:
    """Fill ``out`` -- the window of the pixel plane at (row0, col0) -- from the ``size`` x ``size``
    blocks of a grid (``block(i, j)`` gives block (i, j)), one block row at a time; yields
    each block row's index once it is pasted, so a caller can drop what it no longer needs."""
    row1, col1 = row0 + out.shape[0], col0 + out.shape[1]
    for i in range(row0 // size, (row1 - 1) // size + 1):
        r0, r1 = max(row0, i * size), min(row1, (i + 1) * size)
        for j in range(col0 // size, (col1 - 1) // size + 1):
            c0, c1 = max(col0, j * size), min(col1, (j + 1) * size)
            data = block(i, j)
            out[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = data[r0 - i * size : r1 - i * size,
                                                                      c0 - j * size : c1 - j * size]
        yield i


class SyntheticBackground:
    """Beam-correlated Gaussian noise of any size, identical whichever window reads it.

    *White noise* lives in fixed ``NOISE_TILE`` x ``NOISE_TILE`` tiles on the infinite
    pixel plane: tile (ti, tj) covers rows [ti*T, (ti+1)*T) and cols [tj*T, (tj+1)*T)
    and holds ``standard_normal((T, T), dtype=float32)`` drawn from the map's noise
    sequence (:func:`_noise_base_state`) advanced by ``pair(zigzag(ti), zigzag(tj)) <<
    NOISE_STRIDE_BITS`` draws (``pair`` is Szudzik's pairing, ``zigzag`` maps 0, -1, 1,
    -2, ... to 0, 1, 2, 3, ... so the halo above and left of the map has streams too).
    Jumping ahead on one sequence costs ~5 us per tile where seeding a generator per tile
    cost ~55 us, a tenth of a chunk's noise; PCG64DXSM is the PCG variant numpy
    recommends for streams made by jumping. Tiles are independent of ``block`` and of the
    map size, so a block draws only the tiles under itself plus its kernel-radius halo.

    *Correlated noise* is computed per fixed ``block`` x ``block`` output block, from the
    white noise under the block plus a halo of the kernel radius h: one float32 real FFT
    of a fixed size per block shape, multiplied by a cached transform of the kernel
    already scaled by ``rms / sqrt(sum k**2)`` (the analytic normalisation of
    :func:`radiff_scale.beam.correlated_noise`). Computing per window instead would
    round differently with the FFT size, so pixel values would depend on the window;
    per fixed block they do not. A read assembles the output blocks it covers; recently
    used blocks are cached because catalogue windows are small and often fall in the
    same block. The default block of 512 is where a float32 FFT costs least per pixel
    here (a 1024 block costs ~1.5x more per pixel, a 256 one pays more halo).
    """

    def __init__(
        self,
        geometry: MapGeometry,
        rms_jy: float,
        seed: int,
        block: int = 512,
        cache_blocks: int = 4,
    ) -> None:
        if not (rms_jy > 0 and math.isfinite(rms_jy)):
            raise RadiffError(f"synthetic background rms must be > 0 Jy/beam, got {rms_jy!r}")
        if int(seed) < 0:
            raise RadiffError(f"seed must be non-negative, got {seed!r}")
        self.geometry = geometry
        self.rms_jy = float(rms_jy)
        self.seed = int(seed)
        self.block = int(block)
        self.kernel = geometry.beam.kernel(geometry.pixel_scale_arcsec)
        self.halo = self.kernel.shape[0] // 2
        if self.block < 16 or self.block <= self.halo:
            raise RadiffError(
                f"synthetic background block {block} must be >= 16 and larger than the beam kernel radius {self.halo} px"
            )
        self.cache_blocks = max(0, int(cache_blocks))
        self._noise_state = _noise_base_state(self.seed)
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._kernel_ft: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def shape(self) -> tuple[int, int]:
        return self.geometry.shape

    def _tile(self, ti: int, tj: int, memo: _TileMemo) -> np.ndarray:
        """Unit white noise of tile (ti, tj) (any sign); ``memo`` shares tiles between the blocks of one read."""
        tile = memo.tiles.get((ti, tj))
        if tile is None:
            bits = memo.generator.bit_generator
            bits.state = self._noise_state
            bits.advance(_pair(_zigzag(ti), _zigzag(tj)) << NOISE_STRIDE_BITS)
            tile = memo.tiles[(ti, tj)] = memo.generator.standard_normal((NOISE_TILE, NOISE_TILE), dtype=np.float32)
        return tile

    def _white_window(self, row0: int, row1: int, col0: int, col1: int, memo: _TileMemo) -> np.ndarray:
        """White noise over any window of the pixel plane (negative or past-the-edge coordinates included)."""
        out = np.empty((row1 - row0, col1 - col0), dtype=np.float32)
        for _ in paste_blocks(out, row0, col0, NOISE_TILE, lambda ti, tj: self._tile(ti, tj, memo)):
            pass
        return out

    def _kernel_transform(self, fshape: tuple[int, int]) -> np.ndarray:
        """rfft2 of the kernel scaled to the requested rms, zero-padded to ``fshape`` (cached: at most
        four block shapes per map, the interior one and the ragged right/bottom/corner ones)."""
        ft = self._kernel_ft.get(fshape)
        if ft is None:
            key = (self.kernel.shape, self.kernel.tobytes(), self.rms_jy, fshape)
            with _KERNEL_FT_LOCK:
                ft = _KERNEL_FT_CACHE.get(key)
                if ft is not None:
                    _KERNEL_FT_CACHE.move_to_end(key)
            if ft is None:
                norm = float(np.sqrt(np.sum(self.kernel * self.kernel)))
                scaled = (self.kernel * (self.rms_jy / norm)).astype(np.float32)
                ft = sp_fft.rfft2(scaled, s=fshape)
                ft.setflags(write=False)
                with _KERNEL_FT_LOCK:
                    _KERNEL_FT_CACHE[key] = ft
                    while len(_KERNEL_FT_CACHE) > _KERNEL_FT_CACHE_SIZE:
                        _KERNEL_FT_CACHE.popitem(last=False)
            with self._lock:
                ft = self._kernel_ft.setdefault(fshape, ft)
        return ft

    def _convolve(self, white: np.ndarray) -> np.ndarray:
        """'valid' convolution of white noise carrying a halo of h with the scaled kernel.

        A circular convolution of size >= the white window has no wrap-around in the
        valid part (output n needs inputs n - 2h .. n), so no extra zero padding is needed.
        Returns a view into the inverse transform (callers copy what they keep).
        """
        h = self.halo
        rows, cols = white.shape[0] - 2 * h, white.shape[1] - 2 * h
        fshape = (sp_fft.next_fast_len(white.shape[0], real=True), sp_fft.next_fast_len(white.shape[1], real=True))
        spectrum = sp_fft.rfft2(white, s=fshape)
        spectrum *= self._kernel_transform(fshape)
        full = sp_fft.irfft2(spectrum, s=fshape, overwrite_x=True)
        return full[2 * h : 2 * h + rows, 2 * h : 2 * h + cols]

    def _noise_block(self, bi: int, bj: int, memo: _TileMemo) -> np.ndarray:
        key = (bi, bj)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        rows, cols = self.shape
        b, h = self.block, self.halo
        r0, r1 = bi * b, min(rows, (bi + 1) * b)
        c0, c1 = bj * b, min(cols, (bj + 1) * b)
        noise = self._convolve(self._white_window(r0 - h, r1 + h, c0 - h, c1 + h, memo))
        if self.cache_blocks:
            noise = np.ascontiguousarray(noise)  # do not pin the whole padded transform
            noise.setflags(write=False)
            with self._lock:
                self._cache[key] = noise
                while len(self._cache) > self.cache_blocks:
                    self._cache.popitem(last=False)
        return noise

    def read(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        check_window(self.shape, row0, row1, col0, col1)
        b, t = self.block, NOISE_TILE
        out = np.empty((row1 - row0, col1 - col0), dtype=np.float32)  # every pixel is assigned below
        if out.size == 0:
            return out
        memo = _TileMemo()
        for bi in paste_blocks(out, row0, col0, b, lambda i, j: self._noise_block(i, j, memo)):
            # Blocks go row by row: tiles wholly above the next block row's halo are done with,
            # so a tall read holds about two block rows of white noise, not all of it.
            first_needed = ((bi + 1) * b - self.halo) // t
            for key in [k for k in memo.tiles if k[0] < first_needed]:
                del memo.tiles[key]
        return out

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_cache=OrderedDict(), _kernel_ft={}, _lock=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
