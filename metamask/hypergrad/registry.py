"""The registry of hypergradient estimators, selectable per node by name.

An estimator answers one question for an edge upper -> lower of the graph: given
``v = dL_upper / d(lower params)``, what is the indirect gradient ``(d lower* / d upper)^T v``
with respect to the upper node's parameters? Estimators are registered with their own options
dataclass, so ``hypergradient: {type: cg, iterations: 10}`` in a spec is validated by the
estimator that owns the keys.

Another process's estimators are found through a spec's ``imports:``
(:mod:`metamask.config.imports`) or installed entry points in the ``metamask.estimators``
group, loaded lazily: when a name that is not registered is looked up, never at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol, TypeVar

import torch

from metamask.config import EstimatorSpec, parse_dataclass
from metamask.config.origins import origin_of
from metamask.errors import ConfigError, did_you_mean
from metamask.hypergrad.protocol import HypergradNode

#: ``(H, v, options) -> x``: what an approximate estimator applies in place of ``H^{-1} v``
DenseForm = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


class EstimatorFn(Protocol):
    def __call__(
        self,
        vector: Sequence[torch.Tensor],
        lower: HypergradNode,
        upper: HypergradNode,
        options: Any,
    ) -> list[torch.Tensor]:
        """Indirect gradient w.r.t. ``upper.trainable_parameters()`` from ``v`` on ``lower``'s."""
        ...


@dataclass(frozen=True)
class Estimator:
    """A registered estimator: its function, its options type and what it is."""

    name: str
    fn: EstimatorFn
    options_type: type
    description: str = ""
    #: the lower node must keep its unrolled trajectory (run its steps differentiably): a
    #: :class:`~metamask.hypergrad.protocol.TrajectoryNode`, as metamask's DifferentiableNode
    needs_trajectory: bool = False
    #: the estimator reads the gradient the lower's last optimizer step applied
    #: (``HypergradNode.applied_grads``), which the node then records
    reads_applied_grads: bool = False
    #: on a node with lowers of its own (a nested shape), the estimator solves with the node's
    #: *total* Hessian (:mod:`metamask.hypergrad.nested`) and so stays exact; estimators without
    #: it are refused there at build time unless the node opts in with ``approximate: true``
    nested: bool = False
    #: the forward response ``t -> (d lower*/d upper) t`` (a tangent on the upper's parameters to
    #: one on the lower's), which the total Hessian of the lower's own upper needs; None: the
    #: estimator cannot serve below a nested node
    jvp: Callable[..., list[torch.Tensor]] | None = None
    #: the estimator's contract, which the contract tests (tests/hypergrad/test_contract.py)
    #: check on the closed forms of metamask.testing for every registered name: exact with its
    #: default options (``needs_trajectory``: exact for the unrolled objective) ...
    exact: bool = False
    #: ... or approximate, stated as ``dense_form(H, v, options) -> x``: the ``x ~ H^{-1} v``
    #: whose ``-J^T x`` it returns (darts: ``v``, the first term of the Neumann series); on a
    #: nested node ``H`` is the total Hessian. Neither: it must refuse those problems in one line
    dense_form: DenseForm | None = None

    def default_options(self) -> Any:
        """The options with every field at its default."""
        return self.options_type()


F = TypeVar("F", bound=EstimatorFn)

#: estimators that differentiate a lower node's loss once (finite differences of gradients);
#: every other one (neumann, cg, unrolled, implicit_*, user-registered) may differentiate twice
FIRST_DERIVATIVES_ONLY = frozenset({"first_order", "darts", "sama"})

ESTIMATORS: dict[str, Estimator] = {}


@dataclass(frozen=True)
class NoOptions:
    """This estimator takes no options."""


def register_estimator(
    name: str,
    options_type: type = NoOptions,
    description: str = "",
    *,
    needs_trajectory: bool = False,
    reads_applied_grads: bool = False,
    nested: bool = False,
    jvp: Callable[..., list[torch.Tensor]] | None = None,
    exact: bool = False,
    dense_form: DenseForm | None = None,
) -> Callable[[F], F]:
    """Decorator: register ``fn(vector, lower, upper, options)`` as estimator ``name``.

    ``fn`` receives ``vector`` = dL_upper/d(lower.trainable_parameters()) and returns the
    indirect gradient with respect to ``upper.trainable_parameters()`` (same order, zeros for
    unused parameters). ``options`` is an instance of ``options_type`` (a frozen dataclass
    whose fields are the YAML keys under ``hypergradient:``). The name then works in specs
    (``hypergradient: {type: name, ...}``) and in :func:`use_estimator`. ``nested=True``
    declares that ``fn`` handles a lower node with lowers of its own exactly (total Hessian,
    :mod:`metamask.hypergrad.nested`); ``jvp`` is the forward twin of ``fn`` (same arguments,
    the vector a tangent on the upper's parameters, the result one on the lower's), needed when
    the lower sits below a nested node. ``exact`` / ``dense_form`` state its contract
    (:class:`Estimator`), which the contract tests check for every registered name: exact with
    its defaults, or what it computes in place of ``H^{-1} v``; an estimator stating neither
    must refuse the closed-form problems in one line.

    Example (the darts direction with a user-chosen scale):
        >>> from dataclasses import dataclass
        >>> from metamask.hypergrad.autodiff import lower_gradient, mixed_vjp
        >>> @dataclass(frozen=True)
        ... class ScaledOptions:
        ...     scale: float = 1.0  # multiplies v before the mixed partials
        >>> @register_estimator("doc_scaled_identity", ScaledOptions, "-scale (d2L/dtheta dw) v")
        ... def scaled_identity(vector, lower, upper, options):
        ...     _, grad_w = lower_gradient(lower)
        ...     x = [options.scale * v for v in vector]
        ...     return mixed_vjp(grad_w, upper.trainable_parameters(), x)
        >>> get_estimator("doc_scaled_identity").options_type is ScaledOptions
        True

    Registering the same function again (the same module and qualified name: a notebook cell
    run twice, a module imported by both a spec's ``imports:`` and an entry point) is accepted
    and the newer definition replaces the older one.

    Raises:
        ValueError: ``name`` is already registered by a different function (named).
    """

    def wrap(fn: F) -> F:
        existing = ESTIMATORS.get(name)
        if existing is not None and _identity(existing.fn) != _identity(fn):
            raise ValueError(
                f"estimator {name!r} is already registered by {_identity(existing.fn)}; "
                f"{_identity(fn)} cannot take its name: choose another name, or call "
                f"metamask.hypergrad.unregister_estimator({name!r}) first"
            )
        ESTIMATORS[name] = Estimator(
            name,
            fn,
            options_type,
            description,
            needs_trajectory=needs_trajectory,
            reads_applied_grads=reads_applied_grads,
            nested=nested,
            jvp=jvp,
            exact=exact,
            dense_form=dense_form,
        )
        return fn

    return wrap


def _identity(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of ``fn``: what makes a re-registration "the same function"."""
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


def unregister_estimator(name: str) -> None:
    """Remove a user-registered estimator (tests, notebooks re-running a cell)."""
    ESTIMATORS.pop(name, None)


def get_estimator(name: str) -> Estimator:
    """The registered estimator ``name``, loading an installed one (entry point) on first use.

    Raises:
        ConfigError: unknown name (naming the known ones, registered and installed, and how a
            user estimator is made visible), or an installed one that fails to load.
    """
    if name not in ESTIMATORS and not load_installed_estimator(name):
        choices = sorted({*ESTIMATORS, *installed_estimators()})
        raise ConfigError(
            f"unknown hypergradient estimator {name!r}{did_you_mean(name, choices)}; "
            f"expected one of {choices}. Registered in another process (a notebook, a "
            "script)? add the module that registers it to the spec's imports: (or pass "
            f"--import MODULE), or install it under the {ENTRY_POINT_GROUP!r} entry points"
        )
    return ESTIMATORS[name]


#: the entry-point group of installed estimators: ``name = "package.module"`` (or
#: ``"package.module:function"``), whose import registers estimator ``name``
ENTRY_POINT_GROUP = "metamask.estimators"


def installed_estimators() -> dict[str, str]:
    """Estimators other packages install (entry points in :data:`ENTRY_POINT_GROUP`): name ->
    entry-point value. Read from the packages' metadata; nothing is imported."""
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load_installed_estimator(name: str) -> bool:
    """Import the installed entry point ``name`` (lazily: only when a spec or a call asks for
    an estimator that is not registered). False when none is installed under that name.

    Raises:
        ConfigError: the entry point fails to import, or its import registers no ``name``.
    """
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            ep.load()
        except Exception as exc:  # the installed package's own error, in one line
            cause = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise ConfigError(
                f"hypergradient estimator {name!r}: its entry point {ep.value!r} (group "
                f"{ENTRY_POINT_GROUP!r}) cannot be loaded ({cause})"
            ) from exc
        if name not in ESTIMATORS:
            raise ConfigError(
                f"hypergradient estimator {name!r}: its entry point {ep.value!r} (group "
                f"{ENTRY_POINT_GROUP!r}) loaded but registered no estimator {name!r}; expected "
                f"@register_estimator({name!r}) in that module"
            )
        return True
    return False


def load_installed_estimators() -> list[str]:
    """Load every installed estimator (:func:`load_installed_estimator`); their names, sorted.
    The contract tests call it, so that an installed estimator is tested too."""
    names = sorted(installed_estimators())
    for name in names:
        if name not in ESTIMATORS:
            load_installed_estimator(name)
    return names


def estimator_options(spec: EstimatorSpec, source: str = "<spec>", where: str = "") -> Any:
    """Validate ``spec.options`` against the estimator's own options dataclass."""
    try:
        estimator = get_estimator(spec.type)
    except ConfigError as exc:
        file = origin_of(source, f"{where}.type")  # the file (or --set) that named it
        raise ConfigError(f"{file}: {where}: {exc}" if where else str(exc)) from None
    return parse_dataclass(estimator.options_type, dict(spec.options), source, where)


def reads_applied_grads(name: str) -> bool:
    """Whether estimator ``name`` reads ``node.applied_grads`` (False for unknown names)."""
    estimator = ESTIMATORS.get(name)
    return estimator is not None and estimator.reads_applied_grads


def estimator_names() -> list[str]:
    """The registered estimator names, sorted."""
    return sorted(ESTIMATORS)


def use_estimator(node: HypergradNode, name: str, **options: Any) -> None:
    """Select estimator ``name`` (with ``options``, validated) for gradients through ``node``.

    The Python twin of ``hypergradient: {type: name, **options}`` on the node's spec.

    Example:
        ``use_estimator(graph.nodes["pretrain"], "cg", iterations=20)``

    Raises:
        ConfigError: unknown estimator, or an option key/value it does not take (named).
    """
    spec = EstimatorSpec(type=name, options=options)
    parsed = estimator_options(spec, "<python>", f"node '{node.name}'.hypergradient")
    node.estimator = name
    node.estimator_options = parsed


def _zero_response(
    tangent: Sequence[torch.Tensor], lower: HypergradNode, upper: HypergradNode, options: Any
) -> list[torch.Tensor]:
    """Zero: first_order's forward response (the lower does not move with the upper)."""
    return [torch.zeros_like(p) for p in lower.trainable_parameters()]


@register_estimator(
    "first_order",
    description="ignore the lower level's dependence: zero",
    nested=True,
    jvp=_zero_response,
    dense_form=lambda h, v, options: torch.zeros_like(v),
)
def first_order(
    vector: Sequence[torch.Tensor], lower: HypergradNode, upper: HypergradNode, options: Any
) -> list[torch.Tensor]:
    """Zero: the upper sees the lower's parameters as constants (no indirect gradient)."""
    return [torch.zeros_like(p) for p in upper.trainable_parameters()]
