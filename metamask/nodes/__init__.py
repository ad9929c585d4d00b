"""Betty problem nodes: the base with metamask's fixes, what builders share, and each node type.

Importing this package registers every built-in node type (the registry in
:mod:`metamask.nodes.registry` imports none of them; this ``__init__`` does):

- MetaMAE: ``adapt`` (inner latent adaptation) and ``reconstruct`` (outer; alone: MAE);
- MLO-MAE: ``pretrain`` (level 1), ``head`` (level 2), ``mask`` (level 3);
- a node of your own: ``GraphBuilder.node(module=, loss=, data=)`` (:mod:`.custom`).
"""

from metamask.nodes import adapt, custom, head, mask, pretrain, reconstruct
from metamask.nodes.base import Node
from metamask.nodes.context import BuildContext, Wiring
from metamask.nodes.differentiable import DifferentiableNode
from metamask.nodes.protocols import Downstream, MaskedPretraining
from metamask.nodes.registry import NODE_TYPES, NodeBuilder, get_node_type, register_node_type

__all__ = [
    "NODE_TYPES",
    "BuildContext",
    "DifferentiableNode",
    "Downstream",
    "MaskedPretraining",
    "Node",
    "NodeBuilder",
    "Wiring",
    "adapt",
    "custom",
    "get_node_type",
    "head",
    "mask",
    "pretrain",
    "reconstruct",
    "register_node_type",
]
