"""Shared fixtures. Real data is read from ../shared/data when present (developers, CI)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the test process with pytest's own status, skipping the interpreter's teardown.

    CI once saw the process die with SIGSEGV (exit 139) *after* "350 passed" had been
    printed: the suite starts and stops Ray once per module, and the native threads and
    static state left behind by Ray's gRPC clients, zarr's I/O loop and pyarrow are torn
    down in no fixed order when the interpreter finalises (a known class of exit-time
    crashes; it did not reproduce in two local runs). Every result has been reported by
    now, so nothing is lost by leaving at once, and a crash there can no longer turn a
    green run red.
    """
    if _EXIT_STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; tests that need it are skipped on a bare clone."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _ray_sandbox(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep Ray's temp files out of the home folder and quiet its token warning."""
    if not os.environ.get("RAY_TMPDIR"):  # unset or empty: Ray would fail to start on ""
        os.environ["RAY_TMPDIR"] = str(tmp_path_factory.mktemp("ray"))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch thread for the whole suite: toy-size ops are dominated by thread hand-offs on a
    shared 2-core CPU (~100x slower with 2 threads under load), and results do not depend on it."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model bundle with random weights in the demo architecture (plumbing tests, not quality)."""
    from radiff_scale.data.stretch import AsinhStretch
    from radiff_scale.models.config import load_models_config
    from radiff_scale.models.io import RadiffModels

    models = RadiffModels.from_config(load_models_config(REPO_ROOT / "configs" / "demo.yaml"), seed=0, with_mask_prior=False)
    models.card = {"stretch": AsinhStretch().to_card(), "note": "random weights"}
    return models.save(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="module")
def ray_local(_ray_sandbox: None):
    """One local Ray instance per test module (2 CPUs, as CI has)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()
