"""Loaders for the DABS benchmark's datasets as a researcher has them on disk (``--data-root``).

One module per DABS domain; importing this package imports each of them, and each registers
its datasets (see ``metamask.data.registry``); ``metamask/data/__init__.py`` imports this
package. Both the MetaMAE and the DABS folder layouts are read
(:mod:`metamask.data.dabs.layout`); nothing is ever downloaded.
"""

from metamask.data.dabs import (  # noqa: F401  (importing a module registers its datasets)
    images,
    pickled,
    sensor,
    speech,
    tabular,
    tokens,
)
