"""Labelled training data: the cutout simulator, Survey-Collection I/O, preprocessing, mask bank."""
