"""Autoscaling, exercised on one machine: with no worker node at the start, work that needs one makes
Ray's autoscaler start nodes, the work finishes on them, and the nodes are given back once idle.

cluster.yaml needs AWS. configs/cluster-fake.yaml is the same cluster faked with Ray's
FakeMultiNodeProvider, which starts each "node" as a raylet of its own on this machine; its
autoscaler is Ray's real one (v1, the default of Ray 2.60). Ray's own wrapper for this,
``ray.cluster_utils.AutoscalingCluster``, is not used: it starts and stops Ray with
``ray stop --force``, which kills every Ray process on the machine (another test session's too),
and it reads its template from fake_multi_node/example.yaml, which the Ray wheel does not ship.
Instead the head is a ``ray.cluster_utils.Cluster`` head started with the autoscaling config
(its monitor process runs the autoscaler and the fake provider); the nodes that provider starts
are children of that monitor, so they are given back by the autoscaler, and whatever of this
cluster is still running at the end is ended by pid (``_end_leftovers``).

What each test shows:

- the map job, CPU sampler actors (``num_cpus=1`` each): the autoscaler starts ``cpu_worker``
  nodes for them (the head has no CPU, so nothing runs before a node is up), the job runs on them
  and they go after ``idle_timeout_minutes`` (0.1). The map job cannot ask for the GPU stand-in:
  its sampler actors ask for ``num_gpus=1`` with ``--gpu`` (a real GPU: torch would look for CUDA)
  or one CPU without, and the library has no option for another resource;
- the sampler pool on the GPU stand-in: the same TileSampler actors asked for ``fake_gpu`` (as
  cluster.yaml's GPU actors ask for a GPU) start ``gpu_worker`` nodes only, fill a tile store
  through actors.sampling_stage.sample_to_store, and the nodes go when the actors are gone.

Numbers from a run (node counts over time) are in docs/cluster.md.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from actors.sampling_stage import ArrayBatches, sample_to_store  # noqa: E402
from actors.tile_sampler import TileSampler  # noqa: E402
from radiff_scale.classes import OBJECT_CLASSES  # noqa: E402
from radiff_scale.compose.spec import MapSpec, PlacementConfig  # noqa: E402
from radiff_scale.data.mask_bank import MaskBank  # noqa: E402
from radiff_scale.diffusion.settings import SamplerSpec  # noqa: E402
from radiff_scale.mapjob import tiles as tile_store  # noqa: E402
from radiff_scale.pipelines.map_job import run_make_map  # noqa: E402
from radiff_scale.seeding import derive_seed  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FAKE_CONFIG = REPO / "configs" / "cluster-fake.yaml"
#: Nodes must be back to none this long after the work ends: the 6 s idle timeout, the
#: autoscaler's 1 s rounds, and a loaded 2-core machine.
GIVE_BACK_S = 90.0


def _config() -> dict:
    return yaml.safe_load(FAKE_CONFIG.read_text())


def _free_port() -> int:
    """A port for the head's GCS: the fake provider must be told it before the head starts."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _end_leftovers(session_dir: str) -> list[int]:
    """SIGKILL, by pid, every process still naming this cluster's own session folder (the head's
    processes are gone by now; a fake node the autoscaler did not give back would be left over:
    it is a child of the monitor, not of this process). Returns the pids (Linux; elsewhere none)."""
    killed: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return killed
    needle = session_dir.encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "cmdline").read_bytes():
                continue
            os.kill(int(entry.name), signal.SIGKILL)
            killed.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return killed


class NodeLog(threading.Thread):
    """The cluster's worker nodes by type, polled every 0.25 s from a thread (the work blocks the
    test's thread): ``changes`` lists (seconds since start, cpu_worker nodes, gpu_worker nodes)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.t0 = time.monotonic()
        self.changes: list[tuple[float, int, int]] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    def counts(self) -> tuple[int, int]:
        """(cpu_worker, gpu_worker) nodes alive now, recorded in ``changes`` if they changed."""
        workers = [n for n in ray.nodes() if n["Alive"] and "node:__internal_head__" not in n["Resources"]]
        gpu = sum(1 for n in workers if "fake_gpu" in n["Resources"])
        counts = (len(workers) - gpu, gpu)
        with self._lock:
            if not self.changes or self.changes[-1][1:] != counts:
                self.changes.append((self.now(), *counts))
        return counts

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self.counts()
                time.sleep(0.25)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def wait_for_no_workers(self, timeout_s: float) -> float | None:
        """Seconds until no worker node is left (None if some are still up after ``timeout_s``)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.counts() == (0, 0):
                return round(time.monotonic() - start, 1)
            time.sleep(0.25)
        return None

    def peak(self) -> tuple[int, int, int]:
        """The most cpu_worker, gpu_worker and worker nodes of any kind alive at one time."""
        return (max((c[1] for c in self.changes), default=0), max((c[2] for c in self.changes), default=0),
                max((c[1] + c[2] for c in self.changes), default=0))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


@contextmanager
def autoscaling_cluster(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeLog]:
    """configs/cluster-fake.yaml up, with no worker node yet, connected; everything ended after.

    Ray is shut down before (connect_ray must reuse this cluster, not a module's ``ray_local``)
    and after (the next module's ``ray_local`` starts its own).
    """
    ray.shutdown()
    monkeypatch.setenv("RAY_FAKE_CLUSTER", "1")  # the fake provider refuses to start without it
    monkeypatch.setenv("AUTOSCALER_UPDATE_INTERVAL_S", "1")  # the autoscaler decides every second, not every 5
    port = _free_port()
    config = _config()
    config["provider"]["gcs_address"] = f"{ray.util.get_node_ip_address()}:{port}"
    path = tmp / "cluster-fake.yaml"
    path.write_text(yaml.safe_dump(config))
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "gcs_server_port": port, "autoscaling_config": str(path)})
    session = cluster.head_node.get_session_dir_path()
    log = NodeLog()
    try:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        log.start()
        yield log
    finally:
        log.stop()
        ray.shutdown()
        cluster.shutdown()
        left = _end_leftovers(session)
        print(f"node changes (s, cpu_worker, gpu_worker): {log.changes}; processes left and ended: {len(left)}")
    if log.error is not None:
        raise log.error


def _timeline(log: NodeLog) -> str:
    """The node counts over time, for a failure message."""
    return "(s, cpu_worker, gpu_worker) " + json.dumps(log.changes)


def test_the_fake_cluster_is_cluster_yaml_with_the_same_node_types() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    fake, real = _config(), yaml.safe_load((REPO / "cluster.yaml").read_text())
    jsonschema.validate(fake, schema)
    workers = lambda c: {k for k in c["available_node_types"] if k != c["head_node_type"]}  # noqa: E731
    assert workers(fake) == workers(real) == {"gpu_worker", "cpu_worker"}
    types = fake["available_node_types"]
    assert "GPU" not in str(types) and types["gpu_worker"]["resources"]["fake_gpu"] == 1
    assert all(t["min_workers"] == 0 for t in types.values())  # nothing runs until work asks for it
    assert fake["idle_timeout_minutes"] <= 0.2


def test_the_map_job_starts_worker_nodes_that_go_when_idle(tiny_bundle: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    spec = MapSpec(
        size=768, chunk=256, workers=2, model=str(tiny_bundle), seed=3,
        placement=PlacementConfig(n_objects=14, margin_px=16),
        sampler=SamplerSpec(name="ddim", steps=2, batch_size=4),
    )  # tests/test_make_map.py's small map
    with autoscaling_cluster(tmp_path, monkeypatch) as log:
        assert log.counts() == (0, 0), "the cluster must start with no worker node"
        started = log.now()
        manifest = run_make_map(spec, tmp_path / "map", progress=False)
        ended = log.now()
        gone_after = log.wait_for_no_workers(GIVE_BACK_S)
    first_up = next((t for t, cpu, gpu in log.changes if cpu + gpu > 0), None)
    print(f"job {started}-{ended} s, first worker node at {first_up} s, peak {log.peak()}, "
          f"all gone {gone_after} s after the job")
    assert gone_after is not None, f"worker nodes still up {GIVE_BACK_S} s after the job: {_timeline(log)}"
    # cpu_worker nodes for the sampler actors; once both are up and busy, pending chunk tasks may
    # also start a gpu_worker (it has a CPU too), and a node idle between stages may go and come back.
    assert log.peak()[0] >= 1, _timeline(log)
    assert first_up is not None and started < first_up < ended
    counts = manifest["counts"]
    assert counts["tile_batches_sampled"] == counts["tile_batches_total"] == 4
    assert counts["catalogue_rows"] == counts["objects_placed"] == 14
    assert (tmp_path / "map" / "map.fits").stat().st_size > 768 * 768 * 4


def test_the_sampler_pool_on_the_gpu_stand_in_starts_gpu_nodes(tiny_bundle: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    bank = MaskBank.default()
    n = 8
    masks = np.stack([bank.pick(int(OBJECT_CLASSES[i % 3]), derive_seed(5, i, "mask"))[1] for i in range(n)])
    seeds = [derive_seed(5, i, "tile") for i in range(n)]
    settings = SamplerSpec("ddim", 2, 1.0, 1.0, 0.0)
    store = tmp_path / "tiles.zarr"
    with autoscaling_cluster(tmp_path, monkeypatch) as log:
        assert log.counts() == (0, 0)
        # make_sampler_pool's actors with the GPU stand-in in place of num_gpus=1 (and no CPU, as there).
        remote = ray.remote(TileSampler).options(num_cpus=0, resources={"fake_gpu": 1}, max_restarts=3,
                                                 max_task_retries=3)
        pool = [remote.remote(str(tiny_bundle), settings, "cpu", 1) for _ in range(2)]
        try:
            counts = sample_to_store(tiny_bundle, settings, ArrayBatches(masks, None, seeds, 2), store, pool=pool)
        finally:
            for actor in pool:
                ray.kill(actor)
        gone_after = log.wait_for_no_workers(GIVE_BACK_S)
    print(f"peak {log.peak()}, all gone {gone_after} s after the pool")
    assert counts.batches_sampled == 4 and tile_store.done_batches(store) == set(range(4))
    # Only gpu_worker nodes. Their peak may pass max_workers (2) for a second: the fake provider
    # starts nodes synchronously and slowly (~4 s each), the autoscaler queues one more meanwhile,
    # then removes it ("max_workers_per_type" in logs/monitor.log); a cloud provider's launch is not
    # counted twice like that.
    cpu_peak, gpu_peak, _ = log.peak()
    assert cpu_peak == 0 and gpu_peak >= 1, f"gpu_worker nodes only: {_timeline(log)}"
    assert gone_after is not None, f"gpu_worker nodes still up {GIVE_BACK_S} s after the pool: {_timeline(log)}"
