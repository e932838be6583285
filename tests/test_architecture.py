"""The layering of docs/architecture.md holds: contracts, module sizes, and a library that imports without Ray.

The import contracts live in pyproject.toml ([tool.importlinter]); import-linter reads
every import statement, function-local ones included, so a lazy upward import breaks
them as surely as a top-level one.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The layers above the core, inside radiff_scale (pyproject.toml's layers contract).
DRIVER_LAYERS = {"cli", "api", "pipelines"}
MAX_MODULE_LINES = 400
MAX_JOB_LINES = 60


def _contracts() -> list[dict]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_import_contracts_are_kept(capsys) -> None:
    from importlinter.cli import lint_imports

    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out[-4000:]


def test_every_library_module_is_in_a_layer() -> None:
    """A new top-level module of radiff_scale must be named in the core contract (or be a driver
    layer): otherwise nothing would check what it imports."""
    core = next(c for c in _contracts() if c["name"].startswith("The library core"))["source_modules"]
    named = {m.split(".", 1)[1] for m in core} | DRIVER_LAYERS
    children = {p.stem for p in (REPO / "radiff_scale").glob("*.py") if p.stem not in ("__init__", "__main__")}
    children |= {p.name for p in (REPO / "radiff_scale").iterdir() if (p / "__init__.py").is_file()}
    assert children - named == set(), f"not in any layer: {sorted(children - named)}"


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_modules_are_small_and_jobs_are_thin() -> None:
    too_long = {str(p.relative_to(REPO)): _lines(p) for top in ("radiff_scale", "actors", "jobs")
                for p in (REPO / top).rglob("*.py") if _lines(p) > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"
    fat_jobs = {p.name: _lines(p) for p in (REPO / "jobs").glob("*.py") if _lines(p) > MAX_JOB_LINES}
    assert not fat_jobs, f"jobs over {MAX_JOB_LINES} lines (the work belongs in the library): {fat_jobs}"


@pytest.mark.parametrize("modules", [
    "radiff_scale.compose",
    "radiff_scale.compose.planner, radiff_scale.compose.stamps, radiff_scale.compose.mosaic",
    "radiff_scale.mapjob.plan, radiff_scale.mapjob.stamps, radiff_scale.mapjob.chunks, radiff_scale.mapjob.export",
    "radiff_scale.cli",
])
def test_the_library_imports_without_ray(modules: str) -> None:
    code = f"import sys\nimport {modules}\nassert 'ray' not in sys.modules, 'ray was imported'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
