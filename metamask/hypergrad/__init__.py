"""Hypergradient estimators: the registry for graph edges, and MetaMAE's latent solvers.

Select an estimator per lower node by name: ``hypergradient: {type: cg, iterations: 10}`` in a
spec, or :func:`use_estimator` from Python; register your own with :func:`register_estimator`.
Importing this package registers every built-in estimator (its member modules register
themselves; the registry imports none of them). Estimators see a node through
:class:`HypergradNode` (and ``unrolled`` through :class:`TrajectoryNode`), never through the
node classes. See docs/hypergradients.md for each estimator's equation, cost and accuracy.
"""

from metamask.hypergrad import betty_estimators, implicit, unrolled  # noqa: F401  (registration)
from metamask.hypergrad.latent import LATENT_SOLVERS, LatentSolverOptions, get_latent_solver
from metamask.hypergrad.protocol import HypergradNode, TrajectoryNode
from metamask.hypergrad.registry import (
    ESTIMATORS,
    Estimator,
    estimator_names,
    estimator_options,
    get_estimator,
    register_estimator,
    unregister_estimator,
    use_estimator,
)

__all__ = [
    "ESTIMATORS",
    "LATENT_SOLVERS",
    "Estimator",
    "HypergradNode",
    "LatentSolverOptions",
    "TrajectoryNode",
    "estimator_names",
    "estimator_options",
    "get_estimator",
    "get_latent_solver",
    "register_estimator",
    "unregister_estimator",
    "use_estimator",
]
