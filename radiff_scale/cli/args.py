"""argparse types shared by the commands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type of counts (workers, sizes, limits): a whole number > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


