"""Pictures a run folder holds: loss curves, reconstructions, (learned) masks.

Modules: ``figures`` (matplotlib on files only, atomic PNG writes), ``curves``
(``losses.png`` from ``metrics.jsonl``), ``reconstructions`` (``reconstructions.png`` for
images, 1-D signals and tokens), ``run_pictures`` (all of them at the end of a run).
Nothing here draws from the global random generators: a run with pictures is the same run.
"""
