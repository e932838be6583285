"""Noise schedules, the training loss and samplers, kept apart from the model blocks.

``schedule`` (ScheduleConfig, make_scheduler), ``loss`` (ldm_loss, mask_prior_loss) and
``sampling`` (sample_tiles, sample_masks). Import the submodules directly; this package
itself imports nothing heavy.
"""
