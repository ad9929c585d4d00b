"""Hypergradient estimators: the registry for graph edges, and MetaMAE's latent solvers."""

from metamask.hypergrad.latent import LATENT_SOLVERS, LatentSolverOptions, get_latent_solver
from metamask.hypergrad.registry import (
    ESTIMATORS,
    Estimator,
    estimator_names,
    estimator_options,
    get_estimator,
    register_estimator,
)

__all__ = [
    "ESTIMATORS",
    "LATENT_SOLVERS",
    "Estimator",
    "LatentSolverOptions",
    "estimator_names",
    "estimator_options",
    "get_estimator",
    "get_latent_solver",
    "register_estimator",
]
