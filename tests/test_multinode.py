"""The map job on a Ray cluster of several nodes, on one machine: a node that goes away mid-run costs
time, never bytes.

On an autoscaling cluster (docs/cluster.md) nodes come and go under a running job: spot GPU nodes
are reclaimed, a node dies. The job is built to survive that: Ray retries the stateless stamp,
chunk and export tasks (``max_retries=3``, actors/map_tasks.py), and the sampler pool sends the
calls of an actor that stopped answering to the others (actors/scheduler.py::run_on_actors); every
task and batch writes a fixed place whole, so a retry cannot change a byte. These tests make that
happen with ``ray.cluster_utils.Cluster``: a head with no CPU (the driver runs there, so every task
and actor runs on a worker node) and three one-CPU worker nodes, each a raylet of its own, and
remove a node with ``Cluster.remove_node`` from a thread while the job runs in the test's own:
a node where, at that moment, a sampler actor is sampling a batch or a chunk task is running (as
the worker's process title says), so that work in progress is lost.

The three sampler actors fill the three nodes, so the actor of the node that goes away cannot
restart anywhere: the pool has to finish with the two that are left (before run_on_actors
resubmitted lost calls itself, Ray's own retries waited for that restart forever and the run hung).

The spec is tests/test_make_map.py's small map (768^2, 14 objects, DDIM 2 steps) with two changes
that make the removal land mid-stage: batches of 2 (7 batches for 3 actors with 2 calls in flight
each: when the first batch is done, every actor that has started still has work queued) and
chunks of 128 (36 chunks: the compositing lasts long enough for a node to go while it runs).
The products are compared with those of the same spec made undisturbed on a one-node local Ray.
Each test builds its own cluster and shuts it down; Ray is shut down before (a module before may
have left the ``ray_local`` Ray running) and after (the next module's ``ray_local`` starts its own).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")
from ray._private import ray_constants  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from astropy.io import fits  # noqa: E402

from radiff_scale.compose.mosaic import done_chunks  # noqa: E402
from radiff_scale.compose.spec import MapSpec, PlacementConfig  # noqa: E402
from radiff_scale.diffusion.settings import SamplerSpec  # noqa: E402
from radiff_scale.mapjob.tiles import done_batches  # noqa: E402
from radiff_scale.pipelines.map_job import run_make_map  # noqa: E402

pytestmark = pytest.mark.slow

WORKER_NODES = 3
N_OBJECTS, BATCH, CHUNK, SIZE = 14, 2, 128, 768
TILE_BATCHES = -(-N_OBJECTS // BATCH)
CHUNKS = (SIZE // CHUNK) ** 2
#: Linux: which node runs what can be read from its workers' process titles.
HAS_PROC = Path("/proc/self/stat").exists()


def spec_for(bundle: Path) -> MapSpec:
    """One sampler actor per worker node (``workers`` = 3); see the module docstring for the sizes."""
    return MapSpec(
        size=SIZE, chunk=CHUNK, workers=WORKER_NODES, model=str(bundle), seed=3,
        placement=PlacementConfig(n_objects=N_OBJECTS, margin_px=16),
        sampler=SamplerSpec(name="ddim", steps=2, batch_size=BATCH),
    )


@contextmanager
def multinode_cluster() -> Iterator[Cluster]:
    """A head without CPUs plus ``WORKER_NODES`` one-CPU nodes, connected; always shut down after."""
    ray.shutdown()  # connect_ray reuses whatever Ray is initialised: it must be this cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(WORKER_NODES):
            cluster.add_node(num_cpus=1, wait=False)  # the nodes start side by side
        cluster.wait_for_nodes(timeout=120)
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


class NodeRemover(threading.Thread):
    """Removes one worker node once ``when()`` is true: the map job blocks the test's thread.

    ``pick`` chooses the node among the worker nodes (never the head: the driver is on it), or
    None to look again a moment later. ``progress()`` (done units of the stage) is recorded just
    before and just after the removal, so the test can check that the node really went away
    while the stage still had work.
    """

    def __init__(self, cluster: Cluster, when: Callable[[], bool], progress: Callable[[], int],
                 pick: Callable[[Cluster], Any | None]) -> None:
        super().__init__(daemon=True)
        self.cluster, self.when, self.progress, self.pick = cluster, when, progress, pick
        self.done_before: int | None = None
        self.done_after: int | None = None
        self.titles: list[str] | None = None
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                node = self.pick(self.cluster) if self.when() else None
                if node is not None:
                    self.done_before = self.progress()
                    self.titles = worker_titles(node)  # what its workers run as it goes
                    self.cluster.remove_node(node)
                    self.done_after = self.progress()
                    return
                time.sleep(0.02)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)


def _safe_count(count: Callable[[], int]) -> Callable[[], int]:
    """A store's done count, 0 while the store does not exist yet or is being created."""
    def run() -> int:
        try:
            return count()
        except Exception:  # noqa: BLE001 -- half-created store: nothing done yet
            return 0
    return run


def _titles_of_children(pid: int) -> list[str]:
    """Process titles of ``pid``'s children (Ray names a worker ``ray::<task or Actor.method>``
    while it runs one). Linux /proc; empty elsewhere."""
    titles = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                titles.append((entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace"))
        except (OSError, IndexError, ValueError):
            continue
    return titles


def node_running(title: str) -> Callable[[Cluster], Any | None]:
    """Picks a worker node with a worker running ``title`` right now, so that the removal kills
    work in progress (not a node that happens to sit between two tasks); any worker node where
    /proc cannot tell."""
    def pick(cluster: Cluster) -> Any | None:
        nodes = sorted(cluster.worker_nodes, key=lambda n: n.node_id)
        if not HAS_PROC:
            return nodes[0]
        return next((n for n in nodes if any(t.startswith(title) for t in worker_titles(n))), None)
    return pick


def worker_titles(node: Any) -> list[str]:
    """Titles of the processes the node's raylet started (its workers and agents)."""
    return _titles_of_children(node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)


def assert_removed_while_running(remover: NodeRemover, title: str) -> None:
    """The removed node's workers were running ``title`` a moment before it went (where /proc
    tells), so the removal did kill work in progress."""
    assert remover.titles is not None, "the node was never removed"
    if HAS_PROC:
        assert any(t.startswith(title) for t in remover.titles), remover.titles


def _alive_nodes() -> int:
    return sum(1 for n in ray.nodes() if n["Alive"])


def _read(path: Path, ext: int | str = 0) -> np.ndarray:
    with fits.open(path) as hdul:
        return np.asarray(hdul[ext].data).copy()


def assert_same_products(out: Path, reference: Path) -> None:
    """The map, both label planes and the catalogue: identical to the undisturbed run's."""
    assert (out / "map.fits").read_bytes() == (reference / "map.fits").read_bytes()
    assert (out / "labels.fits").read_bytes() == (reference / "labels.fits").read_bytes()
    assert (out / "catalogue.csv").read_bytes() == (reference / "catalogue.csv").read_bytes()
    assert np.array_equal(_read(out / "labels.fits", "INSTANCE"), _read(reference / "labels.fits", "INSTANCE"))


@pytest.fixture(scope="module")
def reference(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same map made undisturbed on one node, a local Ray of 2 CPUs (as CI's): quicker to
    start than the cluster, and the bytes must not depend on the cluster's shape either (two of
    the three sampler actors fit there; the third never starts and is not needed)."""
    out = tmp_path_factory.mktemp("multinode") / "undisturbed"
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        manifest = run_make_map(spec_for(tiny_bundle), out, progress=False)
    finally:
        ray.shutdown()
    counts = manifest["counts"]
    assert (counts["tile_batches_total"], counts["chunks_total"]) == (TILE_BATCHES, CHUNKS)
    assert counts["tile_batches_resubmitted"] == 0 and counts["tile_actors_lost"] == 0
    return out


def run_losing_a_node(tiny_bundle: Path, out: Path, when: Callable[[], bool], progress: Callable[[], int],
                      pick: Callable[[Cluster], Any | None]) -> tuple[dict, NodeRemover, int]:
    """Run the map job on a fresh cluster, one node removed when ``when()``; returns the manifest,
    the remover and the number of live nodes at the end."""
    with multinode_cluster() as cluster:
        assert _alive_nodes() == WORKER_NODES + 1
        remover = NodeRemover(cluster, when, progress, pick)
        remover.start()
        try:
            manifest = run_make_map(spec_for(tiny_bundle), out, progress=False)
        finally:
            remover.stop()
        alive = _alive_nodes()
    if remover.error is not None:
        raise remover.error
    return manifest, remover, alive


def test_a_node_lost_while_tiles_are_sampled_changes_no_byte(reference: Path, tiny_bundle: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "lost-in-sampling"
    store = out / "work" / "tiles.zarr"
    progress = _safe_count(lambda: len(done_batches(store)) if store.exists() else 0)
    running = "ray::TileSampler.sample"
    manifest, remover, alive = run_losing_a_node(tiny_bundle, out, lambda: progress() >= 1, progress,
                                                 node_running(running))
    counts = manifest["counts"]
    print(f"node removed with {remover.done_before}->{remover.done_after} of {TILE_BATCHES} tile batches done, "
          f"running {[t for t in remover.titles or [] if t.startswith('ray::Tile')]}; "
          f"resubmitted {counts['tile_batches_resubmitted']}, actors lost {counts['tile_actors_lost']}; "
          f"tiles stage {manifest['seconds']['tiles']} s")  # shown with pytest -rA
    assert_removed_while_running(remover, running)
    assert remover.done_before is not None and remover.done_before < TILE_BATCHES, "removed after sampling"
    assert alive == WORKER_NODES  # the head and two workers
    # The lost actor's batches in flight went to the two others; its restart never came (no room).
    # (At least that one: a call Ray reports lost for another reason would count its actor too.)
    assert counts["tile_actors_lost"] >= 1 and counts["tile_batches_resubmitted"] >= 1
    assert counts["tile_batches_sampled"] == counts["tile_batches_total"] == TILE_BATCHES
    assert_same_products(out, reference)


def test_a_node_lost_while_chunks_are_composited_changes_no_byte(reference: Path, tiny_bundle: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "lost-in-compositing"
    mosaic = out / "map.zarr"
    progress = _safe_count(lambda: len(done_chunks(mosaic)) if (mosaic / "zarr.json").exists() else 0)
    running = "ray::compose_chunk_task"
    manifest, remover, alive = run_losing_a_node(tiny_bundle, out, lambda: progress() >= 1, progress,
                                                 node_running(running))
    counts = manifest["counts"]
    print(f"node removed with {remover.done_before}->{remover.done_after} of {CHUNKS} chunks done, "
          f"running {[t for t in remover.titles or [] if t.startswith('ray::compose')]}; "
          f"chunks stage {manifest['seconds']['chunks']} s")  # shown with pytest -rA
    assert_removed_while_running(remover, running)
    assert remover.done_before is not None and remover.done_before < CHUNKS, "removed after compositing"
    assert alive == WORKER_NODES
    # Ray retried the chunk task that was running on the lost node (max_retries=3; the manifest
    # has no count of Ray's retries); the sampling before it saw no loss.
    assert counts["chunks_written"] == counts["chunks_total"] == CHUNKS
    assert counts["tile_actors_lost"] == 0 and counts["tile_batches_resubmitted"] == 0
    assert_same_products(out, reference)
