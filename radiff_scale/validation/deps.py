"""The optional packages validate needs (PyBDSF, ska-sdc), checked once with a one-line refusal.

Neither is a dependency of the project: PyBDSF compiles Fortran extensions and ska-sdc
pins old APIs (``read_csv(delim_whitespace=...)``, gone in pandas 3; ``pkg_resources``, gone
in setuptools 81), so they live in the ``validate`` extra. Both also talk on import: PyBDSF
prints a coloured "Matplotlib pyplot could not be imported" warning on stderr when
matplotlib is absent, ska-sdc trips pandas' and setuptools' deprecation warnings. The
imports here keep that noise off the user's terminal; a missing or broken package becomes
one :class:`~radiff_scale.errors.RadiffError` naming the install command.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import warnings
from types import ModuleType

from radiff_scale.errors import RadiffError

#: The import name and distribution name of each package validate runs.
PACKAGES = {"bdsf": "bdsf", "ska_sdc": "ska-sdc"}

INSTALL_HINT = 'pip install -e ".[validate]"'


def quiet_import(name: str) -> ModuleType:
    """Import ``name`` with its import-time warnings and prints swallowed (see the module doc)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


def missing_packages() -> list[str]:
    """Distribution names of the validate packages that cannot be imported here (with why)."""
    missing = []
    for module, dist in PACKAGES.items():
        try:
            quiet_import(module)
        except ImportError as exc:
            # ska-sdc imports pkg_resources, which setuptools >= 81 no longer ships: say so.
            why = f" ({exc.name} is missing)" if exc.name and exc.name.split(".")[0] != module else ""
            missing.append(f"{dist}{why}")
    return missing


def require_packages() -> None:
    """Refuse, before any work, when PyBDSF or ska-sdc is not importable."""
    missing = missing_packages()
    if missing:
        raise RadiffError(f"validate needs PyBDSF and ska-sdc ({', '.join(missing)} not importable): {INSTALL_HINT}")


def package_versions() -> dict[str, str | None]:
    """Versions of what decides validate's numbers, for the report (None if not installed)."""
    out: dict[str, str | None] = {}
    for dist in ("bdsf", "ska-sdc", "numpy", "scipy", "astropy", "pandas", "pyarrow", "pillow", "radiff-scale"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out
