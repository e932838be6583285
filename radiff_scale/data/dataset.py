"""PyTorch view of a Survey-Collection dataset: (image, class mask[, background]) per cutout.

The dataset holds only paths and options, never arrays, so it pickles cheaply into
DataLoader workers and Ray Train workers; each item is read from disk on demand.
Preprocessing is not done here but passed in as ``transform`` (the lead's chain:
NaN->0, tanh, normalise), so the same class serves raw inspection and training.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from radiff_scale.data.sc_format import Sample, list_samples, read_sample
from radiff_scale.errors import RadiffError

Transform = Callable[[np.ndarray], np.ndarray]


def centre_crop(array: np.ndarray, size: int, where: str = "image") -> np.ndarray:
    """The central ``size x size`` block (offset ``(H - size) // 2``; 132 -> 128 drops 2 pixels each side).

    A smaller image has no such block: a user error naming ``where`` (negative offsets would
    silently wrap around instead).
    """
    rows, cols = array.shape[-2:]
    if rows < size or cols < size:
        raise RadiffError(f"{where}: image is {rows}x{cols}, smaller than {size}x{size}")
    r0 = (rows - size) // 2
    c0 = (cols - size) // 2
    return array[..., r0 : r0 + size, c0 : c0 + size]


class SurveyCollectionDataset(Dataset):
    """Items of a Survey-Collection dataset as tensors for training.

    Each item is a dict:

    * ``"image"``: float32 tensor (1, H, W), ``transform(image)`` or raw Jy/beam (NaNs kept) when
      ``transform`` is None;
    * ``"mask"``: uint8 tensor (H, W) of class ids (later objects win where they overlap);
    * ``"background"``: float32 tensor (1, H, W), only when ``with_background=True``; a sample
      without a background is then an error, never silent zeros, because a model trained on
      zero conditioning would learn the wrong thing without anyone noticing;
    * ``"name"``: the sample name (str) and ``"index"``: its position in this dataset (int).

    ``source`` is a dataset root or a sequence of annotation JSON paths (``root`` then bounds
    the paths they may name; by default each JSON's grandparent folder). Images must be
    ``size x size`` (``size=None`` accepts any shape); with ``crop=True`` larger ones are
    centre-cropped (image, mask and background alike) before ``transform`` is applied.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        root: str | os.PathLike[str] | None = None,
        size: int | None = 128,
        crop: bool = False,
        with_background: bool = False,
        transform: Transform | None = None,
    ) -> None:
        if isinstance(source, (str, os.PathLike)):
            self.root: Path | None = Path(source) if root is None else Path(root)
            self.paths = list_samples(source)
        else:
            self.root = None if root is None else Path(root)
            self.paths = [Path(p) for p in source]
            if not self.paths:
                raise RadiffError("empty dataset: no annotation JSON paths given")
        if size is not None and size <= 0:
            raise RadiffError(f"dataset size must be a positive number of pixels, got {size}")
        self.size = size
        self.crop = crop
        self.with_background = with_background
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def sample(self, index: int) -> Sample:
        """The full :class:`Sample` behind an item (objects, header, meta), uncropped."""
        return read_sample(self.paths[index], self.root)

    def _fit(self, array: np.ndarray, json_path: Path) -> np.ndarray:
        if self.size is None or array.shape == (self.size, self.size):
            return array
        rows, cols = array.shape
        if self.crop and rows >= self.size and cols >= self.size:
            return centre_crop(array, self.size)
        hint = "" if self.crop else " (pass crop=True to centre-crop larger cutouts)"
        raise RadiffError(f"{json_path}: image is {rows}x{cols}, expected {self.size}x{self.size}{hint}")

    def _apply(self, array: np.ndarray, json_path: Path, what: str) -> torch.Tensor:
        out = array if self.transform is None else np.asarray(self.transform(array))
        if out.shape != array.shape:
            raise ValueError(f"{json_path}: transform changed the {what} shape from {array.shape} to {out.shape}")
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).unsqueeze(0)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = range(len(self.paths))[index]  # normalises negatives, IndexError when out of range
        json_path = self.paths[index]
        sample = self.sample(index)
        if self.with_background and sample.background is None:
            raise RadiffError(f"{json_path}: no 'background' in this sample but with_background=True")
        item: dict[str, Any] = {
            "image": self._apply(self._fit(sample.image, json_path), json_path, "image"),
            "mask": torch.from_numpy(np.ascontiguousarray(self._fit(sample.class_mask(), json_path))),
            "name": sample.name,
            "index": index,
        }
        if self.with_background:
            assert sample.background is not None
            item["background"] = self._apply(self._fit(sample.background, json_path), json_path, "background")
        return item
