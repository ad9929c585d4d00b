"""metamask: meta-learned masked auto-encoders (MetaMAE, MLO-MAE) as Betty graphs."""

__version__ = "0.1.0"
