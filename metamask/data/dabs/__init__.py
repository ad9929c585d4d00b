"""Loaders for the DABS benchmark's datasets as a researcher has them on disk (``--data-root``).

One module per DABS domain; each registers its datasets when imported (see
``metamask.data.registry``). Both the MetaMAE and the DABS folder layouts are read
(:mod:`metamask.data.dabs.layout`); nothing is ever downloaded.
"""
