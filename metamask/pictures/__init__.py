"""Every picture metamask draws: a run folder's (loss curves, reconstructions, learned masks,
mask diversity, the hypergradient audit) and a spec's optimization graph.

Modules: ``figures`` (matplotlib on files only, atomic PNG writes), ``curves``
(``losses.png`` from ``metrics.jsonl``), ``reconstructions`` (``reconstructions.png`` for
images, 1-D signals and tokens), ``maskers`` (``masks.png`` and the ``MaskPictures``
callback), ``diversity`` (``mask_diversity.png``), ``audit`` (``hypergradient_audit.png``),
``run_pictures`` (all of them at the end of a run), ``graph`` (``metamask show --png``).
Nothing here draws from the global random generators: a run with pictures is the same run.
The measures the pictures show live by their concern (:mod:`metamask.mask_diversity`,
:mod:`metamask.hypergrad.audit`); nothing here measures.
"""
