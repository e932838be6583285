"""One progress bar for every long loop (tqdm), silent when the caller asks for quiet."""

from __future__ import annotations

from typing import Any


def progress_bar(progress: bool, total: int, desc: str, unit: str) -> Any:
    """A tqdm bar over ``total`` ``unit``s, disabled (no output at all) when ``progress`` is False."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True, leave=True)
