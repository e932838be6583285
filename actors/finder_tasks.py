"""validate's per-piece Ray task over radiff_scale.validation: PyBDSF on one region of a map.

A pure function of its inputs: it reads the map, cuts its region into a temporary
folder of the worker, runs PyBDSF there on one core and returns the sources the region
owns (a small Arrow table). It writes nothing that outlives it, so a retry after a lost
worker repeats the same work with the same answer.
"""

from __future__ import annotations

import pyarrow as pa
import ray

from actors._worker import one_cpu_task
from radiff_scale.validation.finder import FinderParams, find_owned_sources
from radiff_scale.validation.inputs import MapInfo
from radiff_scale.validation.regions import Region, RegionPlan


@ray.remote(num_cpus=1, max_retries=3)
@one_cpu_task
def find_sources_task(info: MapInfo, plan: RegionPlan, region: Region, params: FinderParams) -> pa.Table:
    return find_owned_sources(info, plan, region, params, ncores=1)
