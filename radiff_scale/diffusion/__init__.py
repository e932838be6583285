"""Noise schedules, the training loss and samplers, kept apart from the model blocks."""
