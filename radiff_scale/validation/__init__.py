"""``radiff-scale validate``: run a real source finder (PyBDSF) on a finished map and score it against the truth.

The map job writes exact truth (docs/truth.md); this package asks how much of it an
off-the-shelf finder recovers, the way a user of the map would find out. Plain library
code, no Ray: :mod:`.inputs` checks the run folder and reads the map's grid, the truth and
labels.fits, :mod:`.regions` splits a big map into overlapping pieces with one owner per
source, :mod:`.finder` runs PyBDSF on one piece, :mod:`.match` pairs detections with truth,
:mod:`.metrics` bins completeness, reliability, flux ratio and offsets by S/N,
:mod:`.sdc1_score` runs the SKA SDC1 scorer unmodified, :mod:`.report` and :mod:`.plot`
write ``validation.json`` and ``validation.png``. The Ray tasks are in
``actors/finder_tasks.py``, the job in ``radiff_scale/pipelines/validate_job.py``.

PyBDSF and ska-sdc are optional (``pip install -e ".[validate]"``) and imported only
when a finder or the scorer runs (:mod:`.deps`).
"""
