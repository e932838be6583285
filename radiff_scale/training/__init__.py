"""Fitting the RADiff models: the library half of the training job, without Ray.

``config`` (the ``train:`` section, STAGE_NAMES), ``data`` (the arrays a stage trains
on), ``batches`` (the seeded global batch and per-sample draws), ``checkpoints``,
``stages`` (the stage table, STAGES), ``loop`` (one worker's training loop, given a
launcher context) and ``card`` (what the bundle records). The driver is
radiff_scale/pipelines/train_job.py and the Ray Train glue actors/trainer.py. Import
the submodules directly: this package imports nothing, so ``config`` stays free of torch.
"""
