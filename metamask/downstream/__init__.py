"""Using a trained encoder, one job per module (docs/using-encoders.md).

``probe`` (linear probe on frozen features, the metrics), ``finetune`` (full fine-tuning of a
copy), ``encoder`` (the encoder alone as a plain module, and its config), ``sources`` (weights
and config read from an export or a run folder), ``load`` (:func:`load_encoder`), ``export``
(``metamask export``), ``card`` (the export's MODEL.md), ``timm_format`` (timm and
facebookresearch/mae key names), ``embed`` (``metamask embed``), ``init_from`` (a run's start
weights, ``model.init_from``).

This ``__init__`` imports none of them: ``metamask.load_encoder`` imports only what loading
needs (no Betty, no TorchOpt, no training stack).
"""
