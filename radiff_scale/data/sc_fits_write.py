"""Canonical FITS bytes of a cutout, assembled by hand and byte-identical to astropy's writer.

Astropy's ``PrimaryHDU.writeto`` costs ~1-5 ms per small file, most of the simulator's
time, so :func:`fits_bytes` assembles the same bytes directly, with the cards themselves
still formatted by astropy. No DATE or checksum keywords and sorted keys, so the same
sample always gives the same bytes and a regenerated dataset can be checked by hash.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from radiff_scale.data.sc_sample import IMAGE_BUNIT, STRUCTURAL
from radiff_scale.fits_types import STORED_DTYPES, bitpix_of

_FITS_KEY = re.compile(r"^[A-Z0-9_-]{1,8}$")

#: FITS files are sequences of 2880-byte blocks of 80-character header cards, then data.
_FITS_BLOCK = 2880
_END_CARD = b"END" + b" " * 77


@functools.lru_cache(maxsize=64)
def _layout_cards(bitpix: int, ny: int, nx: int) -> bytes:
    """The array-layout cards astropy's ``PrimaryHDU`` writes first, comments included.

    They are astropy's own, card for card, so our files are byte-identical to
    ``PrimaryHDU.writeto``; there are few distinct shapes, hence the cache.
    """
    cards = (
        fits.Card("SIMPLE", True, "conforms to FITS standard"),
        fits.Card("BITPIX", bitpix, "array data type"),
        fits.Card("NAXIS", 2, "number of array dimensions"),
        fits.Card("NAXIS1", nx),
        fits.Card("NAXIS2", ny),
        fits.Card("EXTEND", True),
    )
    return "".join(card.image for card in cards).encode("ascii")


def _card_image(key: str, value: Any) -> str:
    """One header card (or a long string's CONTINUE cards) exactly as astropy writes it.

    Formatting is delegated to ``astropy.io.fits.Card`` so the writer cannot drift from
    astropy's rules (float repr with upper-case E cut to 20 characters, right-justified
    numbers, quoted strings padded to 8); a card astropy would refuse or warn about raises.
    A ``(value, comment)`` tuple is accepted as ``Header.__setitem__`` accepts it.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyWarning)  # a header we cannot write cleanly is a bug
            card = fits.Card(key, *value) if isinstance(value, tuple) else fits.Card(key, value)
            card.verify("exception")
            return card.image
    except (ValueError, AstropyWarning) as exc:
        raise ValueError(f"header keyword {key!r} = {value!r} cannot be written to FITS: {exc}") from None


# Card construction and verification cost ~50 us each, and most of a dataset's keywords
# (beam, pixel scale, unit) repeat from cutout to cutout. The repr is part of the key
# because 0.0 == -0.0 (and 1 == 1.0 == True) hash alike but are written differently.
@functools.lru_cache(maxsize=4096)
def _cached_card_image(key: str, value_type: type, value_repr: str, value: Any) -> str:
    return _card_image(key, value)


_CACHEABLE = (bool, int, float, str)


def keyword_cards(header: dict[str, Any]) -> bytes:
    """The data-describing cards of an image FITS: BUNIT first, then the other keywords sorted."""
    images = [_cached_card_image("BUNIT", str, IMAGE_BUNIT, IMAGE_BUNIT)]
    for key in sorted(header):
        if key == "BUNIT":
            continue
        value = header[key]
        value = value.item() if isinstance(value, np.generic) else value
        if type(value) in _CACHEABLE:
            images.append(_cached_card_image(key, type(value), repr(value), value))
        else:
            images.append(_card_image(key, value))
    return "".join(images).encode("ascii")


def fits_bytes(data: np.ndarray, cards: bytes = b"") -> bytes:
    """One primary HDU holding a 2-D float32 or uint8 array, byte-identical to ``PrimaryHDU.writeto``.

    Layout cards, ``cards`` (from :func:`keyword_cards`), END, blank padding to a
    2880-byte block, then the big-endian data zero-padded to a block.
    """
    bitpix = bitpix_of(data.dtype)
    stored = STORED_DTYPES[bitpix]
    ny, nx = data.shape
    head = _layout_cards(bitpix, ny, nx) + cards + _END_CARD
    body = data.astype(stored, order="C", copy=False).tobytes()
    return b"".join(
        (head, b" " * (-len(head) % _FITS_BLOCK), body, b"\0" * (-len(body) % _FITS_BLOCK))
    )


def check_header(header: dict[str, Any]) -> None:
    """Refuse a header the writer would write wrongly (layout or unit keywords, NaN), before any file is touched."""
    for key, value in header.items():
        if not isinstance(key, str) or not _FITS_KEY.match(key):
            raise ValueError(f"header keyword {key!r} is not a FITS keyword (A-Z, 0-9, '_' or '-', 8 chars at most)")
        if STRUCTURAL.match(key):
            raise ValueError(f"header keyword {key!r} describes the array layout and is set by the writer")
        if key == "BUNIT" and str(value).strip().upper() != IMAGE_BUNIT:
            raise ValueError(f"header BUNIT {value!r}: images are written in {IMAGE_BUNIT}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"header keyword {key!r} has non-finite value {value!r}")
