"""FITS pixel types: the BITPIX a numpy dtype is written as, and the bytes FITS stores it in.

The project writes FITS in two places by hand, without astropy's HDU writer (the
Survey-Collection cutouts in :mod:`radiff_scale.data.sc_fits_write`, for speed; the mosaic
export in :mod:`radiff_scale.compose.fits_export`, chunk by chunk at offsets). Both must
agree with each other and with the standard on the type codes, so there is one table.
"""

from __future__ import annotations

import numpy as np

#: BITPIX of each dtype FITS holds natively (uint8 is FITS' only unsigned type).
BITPIX: dict[str, int] = {"uint8": 8, "int16": 16, "int32": 32, "int64": 64, "float32": -32, "float64": -64}

#: BITPIX -> the stored dtype of a pixel, as a dtype string: FITS data are big-endian.
STORED_DTYPES: dict[int, str] = {b: np.dtype(name).newbyteorder(">").str for name, b in BITPIX.items()}


def bitpix_of(dtype: np.dtype | str | type) -> int:
    """The BITPIX a ``dtype`` array is written with; a dtype FITS cannot hold (bool, uint16...) is our bug."""
    name = np.dtype(dtype).name
    try:
        return BITPIX[name]
    except KeyError:
        raise ValueError(f"no FITS BITPIX for dtype {name}") from None
