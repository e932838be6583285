"""The map job's stages as plain functions, no Ray: what each stage has left to do, the work
of one of its tasks, and the store it fills (radiff_scale/pipelines/map_job.py runs them)."""
