"""A bank of pre-sampled (mask, tile) pairs: the tile source for CPU-only or very large maps.

Sampling one tile per object is the one expensive stage of the map job (tens of network
evaluations per tile). A *tile bank* pays that once: ``build_tile_bank`` samples N
tiles for N real single-object masks, in-process and without Ray, and stores the pairs
in one ``.npz``. A map made with ``tiles: bank:PATH`` then gives each object a bank
entry of its planned class, seen through one of the 8 dihedral transforms (rotations
by 0/90/180/270 degrees, each optionally mirrored), applied identically to the mask
and the tile so that they stay aligned pixel for pixel. The object's mask comes from
the bank entry (not from the mask bank): the tile was generated for that mask, and
placement and truth must describe the pixels that are actually pasted.

The trade-off, which the map job states in its output and its manifest:

* **Repetition.** A map with more objects than ``8 * entries`` of a class necessarily
  shows the same shapes again (flipped or rotated), and a source finder or a network
  trained on the map may learn them. Size the bank to the map (entries of a class
  >> objects of that class / 8) when that matters.
* **No background conditioning.** Bank tiles are sampled with the null background, so
  they do not pick up the local texture of the map where they land (the model-sampled
  path conditions every tile on its own 128x128 background window). The stamp cutter
  removes each tile's own background anyway, so the flux truth is exact either way.

Which entry and transform an object gets depends only on the per-object seed the
planner hands to :meth:`TileBank.pick` (``derive_seed(run seed, object id, ...)``),
never on call order or worker count, so bank maps keep the job's determinism. The
choice is recorded in the placement's ``bank_index`` column as ``entry * 8 +
transform`` (:func:`encode` / :func:`decode`), so the tile stage copies exactly the
tile the planner placed, and a resumed run copies the same one.

File format (``np.savez``, uncompressed so the tiles can be memory-mapped; no pickles):
``masks`` uint8 (N, 128, 128) single-object class masks, ``tiles`` float32 (N, 128,
128) in the model's preprocessed [0, 1] range, ``classes`` int64 (N,), ``mask_source``
int64 (N,) (index in the mask bank the mask came from), ``meta`` a JSON string (format
tag and version, the model card incl. its ``stretch``, sampler settings, seed).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radiff_scale.atomic import check_output_path, replace_when_done
from radiff_scale.classes import NUM_CLASSES, OBJECT_CLASSES, class_from_id
from radiff_scale.constants import TILE
from radiff_scale.diffusion.settings import SamplerSpec
from radiff_scale.errors import RadiffError
from radiff_scale.seeding import derive_rng, derive_seed

FORMAT = "radiff-tile-bank"
VERSION = 1

#: Number of dihedral transforms of a square (4 rotations x optional mirror).
N_TRANSFORMS = 8

#: Purpose string of the per-object stream that picks an entry and a transform.
PICK_PURPOSE = "tile-bank"

_ARRAYS = ("masks", "tiles", "classes", "mask_source", "meta")


def dihedral(array: np.ndarray, transform: int) -> np.ndarray:
    """Transform ``transform`` (0..7) of the last two axes: rotate by 90 * (t % 4) degrees, then
    mirror left-right if t >= 4. Transform 0 is the identity; the 8 are all distinct."""
    t = int(transform)
    if not 0 <= t < N_TRANSFORMS:
        raise ValueError(f"transform must be in 0..{N_TRANSFORMS - 1}, got {transform}")
    out = np.rot90(array, t % 4, axes=(-2, -1))
    if t >= 4:
        out = out[..., :, ::-1]
    return np.ascontiguousarray(out)


def encode(entry: int, transform: int) -> int:
    """One integer (stored as the placement's ``bank_index``) for an entry seen through a transform."""
    return int(entry) * N_TRANSFORMS + int(transform)


def decode(code: int) -> tuple[int, int]:
    """``(entry, transform)`` of a code made by :func:`encode`."""
    return divmod(int(code), N_TRANSFORMS)


@dataclass(frozen=True)
class TileBankMeta:
    """Provenance of a bank (what made it), stored as JSON inside the file."""

    model: str
    card: dict[str, Any]
    sampler: dict[str, Any]
    seed: int
    mask_source: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "model": self.model, "card": self.card,
                "sampler": self.sampler, "seed": self.seed, "mask_source": self.mask_source}


class TileBank:
    """Pre-sampled single-object (mask, tile) pairs, picked per object by class and seed."""

    def __init__(
        self,
        masks: np.ndarray,
        tiles: np.ndarray,
        classes: np.ndarray,
        meta: TileBankMeta,
        mask_source: np.ndarray | None = None,
        *,
        source: str = "tile bank",
    ) -> None:
        n = len(classes)
        if masks.shape != (n, TILE, TILE) or tiles.shape != (n, TILE, TILE):
            raise RadiffError(
                f"{source}: masks {masks.shape} and tiles {tiles.shape} must both be ({n}, {TILE}, {TILE})"
            )
        if n == 0:
            raise RadiffError(f"{source}: the bank is empty")
        classes = np.asarray(classes, dtype=np.int64)
        bad = sorted({int(c) for c in np.unique(classes)} - {int(c) for c in OBJECT_CLASSES})
        if bad:
            raise RadiffError(f"{source}: class ids {bad} are not object classes")
        self.masks = masks
        self.tiles = tiles
        self.classes = classes
        self.meta = meta
        self.mask_source = np.full(n, -1, np.int64) if mask_source is None else np.asarray(mask_source, np.int64)
        self.source = source
        self._by_class = {int(c): np.flatnonzero(classes == int(c)) for c in OBJECT_CLASSES}
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def card(self) -> dict[str, Any]:
        """The model card of the model that sampled the tiles (holds the stretch that decodes them)."""
        return dict(self.meta.card)

    def class_counts(self) -> dict[str, int]:
        return {c.label: int(self._by_class[int(c)].size) for c in OBJECT_CLASSES}

    def entries_with(self, class_id: int) -> np.ndarray:
        """Indices of the entries of one class (the same interface as :meth:`MaskBank.entries_with`)."""
        return self._by_class.get(int(class_from_id(class_id)), np.zeros(0, np.int64))

    def choose(self, class_id: int, seed: int) -> tuple[int, int]:
        """``(entry, transform)`` for an object of ``class_id`` with per-object ``seed``.

        Each entry of the class and each transform is equally likely; the draw uses the
        ``PICK_PURPOSE`` stream of ``seed`` only.
        """
        cls = class_from_id(class_id)
        entries = self._by_class.get(int(cls))
        if entries is None or entries.size == 0:
            raise RadiffError(
                f"{self.source} holds no {cls.label} tile; rebuild it with more entries "
                f"or set placement.class_fractions.{cls.label}=0"
            )
        rng = derive_rng(int(seed), int(cls), PICK_PURPOSE)
        return int(entries[rng.integers(entries.size)]), int(rng.integers(N_TRANSFORMS))

    def draw(self, code: int) -> tuple[np.ndarray, np.ndarray]:
        """The transformed ``(mask, tile)`` of a code from :func:`encode`."""
        entry, transform = decode(code)
        if not 0 <= entry < len(self):
            raise ValueError(f"bank code {code} names entry {entry}, outside 0..{len(self) - 1}")
        return dihedral(np.asarray(self.masks[entry]), transform), dihedral(np.asarray(self.tiles[entry]), transform)

    def pick(self, class_id: int, seed: int) -> tuple[int, np.ndarray]:
        """The planner's interface (the same as :meth:`MaskBank.pick`): ``(code, mask)``.

        ``code`` goes into the placement's ``bank_index`` column; the tile stage turns it
        back into the tile with :meth:`draw`.
        """
        entry, transform = self.choose(class_id, seed)
        return encode(entry, transform), dihedral(np.asarray(self.masks[entry]), transform)

    def tiles_for(self, codes: Sequence[int]) -> np.ndarray:
        """The transformed tiles of ``codes``, float32 (len(codes), 128, 128)."""
        out = np.empty((len(codes), TILE, TILE), dtype=np.float32)
        for i, code in enumerate(codes):
            out[i] = self.draw(code)[1]
        return out

    @property
    def fingerprint(self) -> str:
        """sha256 of the bank's content (file bytes when loaded from a file): what a resumed run checks."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            path = Path(self.source)
            if path.is_file():
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 22), b""):
                        digest.update(block)
            else:
                for part in (self.masks, self.tiles, self.classes):
                    digest.update(np.ascontiguousarray(part).tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        """What a manifest records about the bank."""
        return {"path": self.source, "sha256": self.fingerprint, "entries": len(self), "classes": self.class_counts(),
                **self.meta.to_dict()}

    # ---- files -------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the bank (format in the module docstring) atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: given a name, savez would append ".npz"
                np.savez(
                    fh, masks=np.asarray(self.masks, np.uint8), tiles=np.asarray(self.tiles, np.float32),
                    classes=self.classes, mask_source=self.mask_source,
                    meta=np.array(json.dumps(self.meta.to_dict(), sort_keys=True, default=str)),
                )

        return replace_when_done(path, write)

    @classmethod
    def load(cls, path: str | Path) -> TileBank:
        """Read a bank; masks and tiles are memory-mapped (the driver never holds them all)."""
        path = Path(path)
        if not path.is_file():
            raise RadiffError(f"tile bank {path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [a for a in _ARRAYS if a not in data.files]
                if missing:
                    raise RadiffError(f"tile bank {path}: not a tile bank (missing {', '.join(missing)})")
                classes = data["classes"]
                mask_source = data["mask_source"]
                meta_text = str(data["meta"])
                # memory-mapped when stored uncompressed (as save() does); read whole otherwise
                masks = _memmap_member(path, "masks.npy")
                masks = data["masks"] if masks is None else masks
                tiles = _memmap_member(path, "tiles.npy")
                tiles = data["tiles"] if tiles is None else tiles
        except RadiffError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise RadiffError(f"tile bank {path}: cannot read ({exc})") from None
        try:
            meta = json.loads(meta_text)
        except ValueError:
            raise RadiffError(f"tile bank {path}: its meta is not valid JSON") from None
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise RadiffError(
                f"tile bank {path}: format {meta.get('format')!r} v{meta.get('version')!r}, expected {FORMAT!r} v{VERSION}"
            )
        if masks.dtype != np.uint8 or (masks.size and int(masks.max()) >= NUM_CLASSES):
            raise RadiffError(f"tile bank {path}: masks must be uint8 class ids 0..{NUM_CLASSES - 1}")
        if tiles.dtype != np.float32:
            raise RadiffError(f"tile bank {path}: tiles must be float32, got {tiles.dtype}")
        info = TileBankMeta(
            model=str(meta.get("model", "")), card=dict(meta.get("card") or {}), sampler=dict(meta.get("sampler") or {}),
            seed=int(meta.get("seed", 0)), mask_source=str(meta.get("mask_source", "")),
        )
        return cls(masks, tiles, classes, info, mask_source, source=str(path))


def _memmap_member(path: Path, member: str) -> np.ndarray | None:
    """A read-only memmap of an uncompressed ``.npy`` member of a zip (None if it is compressed)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if local[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        offset = fh.tell()
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


# ---- building a bank ---------------------------------------------------------------------


def class_allocation(n: int, fractions: Mapping[str, float] | None = None) -> list[int]:
    """Class id of each of ``n`` entries: the map job's class fractions by largest remainder,
    every class of non-zero weight getting at least one entry when ``n`` allows."""
    from radiff_scale.compose.planner import PlacementConfig

    config = PlacementConfig() if fractions is None else PlacementConfig(class_fractions=dict(fractions))
    weights = config.class_weights()
    exact = weights * n
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    for i in np.flatnonzero((weights > 0) & (counts == 0)):  # rare classes still get an entry
        donor = int(np.argmax(counts))
        if counts[donor] > 1:
            counts[donor] -= 1
            counts[i] += 1
    return [int(c) for c, k in zip(OBJECT_CLASSES, counts) for _ in range(int(k))]


def build_tile_bank(
    model_dir: str | Path,
    n: int,
    out: str | Path,
    *,
    seed: int = 0,
    sampler: SamplerSpec | None = None,
    class_fractions: Mapping[str, float] | None = None,
    mask_bank: Any = None,
    progress: Callable[[int], None] | None = None,
    threads: int | None = 1,
) -> TileBank:
    """Sample ``n`` (mask, tile) pairs with the model bundle in ``model_dir`` and save them to ``out``.

    Masks are real single objects from ``mask_bank`` (default: the shipped bank), picked
    by ``derive_seed(seed, entry, "tile-bank-mask")``; each tile has its own noise seed
    ``derive_seed(seed, entry, "tile-bank-tile")`` and the null background. Runs
    in-process (no Ray), in batches of ``sampler.batch_size``; ``progress`` is called
    with the number of tiles of each finished batch. ``threads``: torch CPU threads while
    sampling (restored afterwards; None keeps torch's default). One thread, like the
    map job's CPU actors, gives the same bytes on any machine of the same build, and on
    a busy machine it is also much faster than oversubscribed intra-op threads.
    """
    import torch

    from radiff_scale.data.mask_bank import MaskBank
    from radiff_scale.diffusion.sampling import sample_tiles
    from radiff_scale.models.io import RadiffModels

    if n < 1:
        raise RadiffError(f"--n must be >= 1, got {n}")
    out = Path(out)
    if out.suffix != ".npz":
        raise RadiffError(f"--out {out}: a tile bank is an .npz file")
    need = n * TILE * TILE * (4 + 1)  # float32 tile + uint8 mask, in memory and then uncompressed on disk
    memory = 0  # physical memory, where the OS says
    if "SC_PHYS_PAGES" in getattr(os, "sysconf_names", {}):
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if memory and need > memory:
        raise RadiffError(f"--n {n}: a bank is built in memory, {need / 2**30:.1f} GiB of it, "
                          f"but this machine has {memory / 2**30:.1f} GiB")
    check_output_path(out, need, folder=False, what=f"a bank of {n} tiles")
    bank = MaskBank.default() if mask_bank is None else mask_bank
    device = "cuda" if torch.cuda.is_available() else "cpu"
    models = RadiffModels.load(model_dir, device=device)
    classes = np.asarray(class_allocation(n, class_fractions), dtype=np.int64)
    masks = np.zeros((n, TILE, TILE), dtype=np.uint8)
    source_index = np.zeros(n, dtype=np.int64)
    for i, cls in enumerate(classes):
        source_index[i], masks[i] = bank.pick(int(cls), derive_seed(seed, i, "tile-bank-mask"))
    seeds = [derive_seed(seed, i, "tile-bank-tile") for i in range(n)]
    tiles = np.zeros((n, TILE, TILE), dtype=np.float32)
    sampler = SamplerSpec() if sampler is None else sampler
    b = max(1, int(sampler.batch_size))
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        for start in range(0, n, b):
            sl = slice(start, min(start + b, n))
            tiles[sl] = sample_tiles(
                models, masks[sl], None, seeds[sl], steps=sampler.steps, guidance=(sampler.guidance_mask, 1.0),
                sampler=sampler.name,
            )
            if progress is not None:
                progress(sl.stop - sl.start)
    finally:
        torch.set_num_threads(previous)
    meta = TileBankMeta(
        model=str(model_dir), card=dict(models.card),
        sampler={"name": sampler.name, "steps": sampler.steps, "guidance_mask": sampler.guidance_mask,
                 "background": None},
        seed=int(seed), mask_source=getattr(bank, "source", "mask bank"),
    )
    made = TileBank(masks, tiles, classes, meta, source_index, source=str(out))
    made.save(out)
    return made
