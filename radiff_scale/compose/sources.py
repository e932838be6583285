"""Where a map's tiles and masks come from: the ``tiles:`` and ``masks:`` values of a spec, parsed once.

``tiles``: ``model`` (sampled by the diffusion model) or ``bank:PATH`` (copied from a
pre-sampled tile bank). ``masks``: ``bank`` (the shipped real mask bank), ``bank:PATH``
(an .npz like it) or ``prior`` (invented by the model's mask prior).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from radiff_scale.errors import RadiffError

_BANK = "bank:"


@dataclass(frozen=True)
class TileSource:
    """``model`` or a tile bank file."""

    bank: Path | None = None

    @classmethod
    def parse(cls, text: str) -> TileSource:
        if text == "model":
            return cls()
        if text.startswith(_BANK):
            path = text[len(_BANK):]
            if not path or not Path(path).is_file():
                raise RadiffError(f"tiles {text}: no such tile bank file (make one with radiff-scale make-tile-bank)")
            return cls(Path(path))
        raise RadiffError(f"unknown tile source {text!r}: expected 'model' or 'bank:PATH'")

    @property
    def kind(self) -> str:
        """``model`` or ``bank`` (the FITS header's TILESRC)."""
        return "model" if self.bank is None else "bank"


@dataclass(frozen=True)
class MaskSource:
    """The shipped bank (``bank``, path None), an .npz bank, or the mask prior."""

    prior: bool = False
    bank: Path | None = None

    @classmethod
    def parse(cls, text: str) -> MaskSource:
        if text == "bank":
            return cls()
        if text == "prior":
            return cls(prior=True)
        if text.startswith(_BANK) and text[len(_BANK):]:
            return cls(bank=Path(text[len(_BANK):]))
        raise RadiffError(f"masks {text!r}: expected 'bank', 'bank:PATH' or 'prior'")
