"""Composing large maps from generated tiles: pure numpy/zarr, unit-tested without Ray."""
