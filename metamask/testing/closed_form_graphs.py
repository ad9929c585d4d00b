"""The closed-form problems as metamask nodes in a GraphEngine, one upper step at a time.

:func:`bilevel_graph` wires a :mod:`~metamask.testing.closed_form` problem (``Ridge``,
``Quadratic``, ``LowRankQuadratic``) as a lower and an upper node; :func:`chain_graph` wires the
three-level :class:`~metamask.testing.closed_form.Chain`. The upper nodes keep each step's total
gradient, to compare with the problems' exact hypergradients. :func:`nested_graph` composes the
nested :class:`~metamask.testing.closed_form.Nested` through the public graph API
(:class:`~metamask.compose.GraphBuilder`, custom nodes), as a researcher would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from metamask.compose import new_graph
from metamask.graph import Graph, GraphEngine
from metamask.hypergrad.registry import use_estimator
from metamask.nodes.base import Node
from metamask.nodes.differentiable import DifferentiableNode
from metamask.testing.closed_form import DTYPE, Chain, Nested, Problem, Quadratic, initial_lower

Tensor = torch.Tensor


class Value(nn.Module):
    """One trainable tensor: a level's parameters."""

    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.value = nn.Parameter(value.clone())


# ----------------------------------------------------------------------------------------------
# as metamask nodes
# ----------------------------------------------------------------------------------------------


class LowerNode(DifferentiableNode):
    """The lower level: minimizes ``L(w, theta)``; reads the upper's ``theta`` by handle.

    With ``solve_exactly`` its optimizer step jumps to ``w*(theta)`` (so implicit estimators
    are evaluated at the optimum); otherwise it takes ordinary optimizer steps.
    """

    def __init__(
        self,
        name: str,
        problem: Problem,
        upper: Value,
        optimizer_lr: float = 0.1,
        unroll_steps: int = 1,
        solve_exactly: bool = False,
        optimizer: str = "sgd",
    ) -> None:
        module = Value(initial_lower(problem.sizes[0]))
        opt: torch.optim.Optimizer
        if optimizer == "adam":
            opt = torch.optim.Adam(module.parameters(), lr=optimizer_lr)
        else:
            opt = torch.optim.SGD(module.parameters(), lr=optimizer_lr)
        super().__init__(name, module, opt, unroll_steps=unroll_steps)
        self.problem = problem
        self.upper_value = upper
        if solve_exactly:
            self.custom_optimizer_step = self._jump_to_optimum

    def get_batch(self) -> Any:
        return ()

    def training_step(self, batch: Any) -> Tensor:
        return self.problem.lower_loss(self.module.value, self.upper_value.value)

    def _jump_to_optimum(self, *args: Any, **kwargs: Any) -> None:
        with torch.no_grad():
            self.module.value.copy_(self.problem.solution(self.upper_value.value))


class UpperNode(Node):
    """The upper level: ``F(w, theta)``; keeps each step's total gradient in ``hypergradients``."""

    def __init__(self, name: str, problem: Problem, module: Value, lower_value: Value) -> None:
        opt = torch.optim.SGD(module.parameters(), lr=0.0)  # theta stays put: compare gradients
        super().__init__(name, module, opt)
        self.problem = problem
        self.lower_value = lower_value
        self.hypergradients: list[Tensor] = []

    def get_batch(self) -> Any:
        return ()

    def training_step(self, batch: Any) -> Tensor:
        return self.problem.upper_loss(self.lower_value.value, self.module.value)

    def grad_callback(self) -> None:
        self.hypergradients.append(self.module.value.grad.detach().clone())


@dataclass
class BilevelGraph:
    """A built two-node graph and its engine."""

    problem: Problem
    lower: LowerNode
    upper: UpperNode
    engine: Any = field(repr=False)

    def run_upper_step(self) -> Tensor:
        """Run engine iterations until the upper steps once; return its total gradient."""
        before = len(self.upper.hypergradients)
        while len(self.upper.hypergradients) == before:
            self.engine.global_step += 1
            self.engine.train_step()
        return self.upper.hypergradients[-1]


def bilevel_graph(
    problem: Problem,
    estimator: str = "first_order",
    unroll_steps: int = 1,
    lr: float = 0.1,
    solve_exactly: bool = True,
    optimizer: str = "sgd",
    **options: Any,
) -> BilevelGraph:
    """``problem`` as lower + upper nodes in a GraphEngine, with ``estimator`` on the lower."""
    theta = Value(problem.theta0())
    lower = LowerNode("lower", problem, theta, lr, unroll_steps, solve_exactly, optimizer)
    upper = UpperNode("upper", problem, theta, lower.module)
    use_estimator(lower, estimator, **options)
    engine = GraphEngine(
        [lower, upper],
        {"u2l": {upper: [lower]}, "l2u": {lower: [upper]}},
        torch.device("cpu"),
    )
    return BilevelGraph(problem, lower, upper, engine)


# ----------------------------------------------------------------------------------------------
# (c) the three-level chain
# ----------------------------------------------------------------------------------------------


class ChainBottom(LowerNode):
    """The chain's bottom level ``a`` (reads ``c``)."""

    def __init__(
        self, chain: Chain, top: Value, lr: float, unroll_steps: int, solve_exactly: bool
    ) -> None:
        fake = Quadratic(chain.ha, chain.ba, chain.da, torch.zeros(len(chain.da), dtype=DTYPE))
        super().__init__("bottom", fake, top, lr, unroll_steps, solve_exactly)


class ChainMiddle(LowerNode):
    """The chain's middle level ``b`` (reads ``a``)."""

    def __init__(
        self, chain: Chain, bottom: Value, lr: float, unroll_steps: int, solve_exactly: bool
    ) -> None:
        fake = Quadratic(chain.hb, chain.bb, chain.db, torch.zeros(len(chain.db), dtype=DTYPE))
        super().__init__("middle", fake, bottom, lr, unroll_steps, solve_exactly)


class ChainTop(Node):
    """The chain's top level ``c``; keeps each step's total gradient in ``hypergradients``."""

    def __init__(self, chain: Chain, module: Value, bottom: Value, middle: Value) -> None:
        super().__init__("top", module, torch.optim.SGD(module.parameters(), lr=0.0))
        self.chain = chain
        self.bottom_value = bottom
        self.middle_value = middle
        self.hypergradients: list[Tensor] = []

    def get_batch(self) -> Any:
        return ()

    def training_step(self, batch: Any) -> Tensor:
        a, b, c = self.bottom_value.value, self.middle_value.value, self.module.value
        return (
            self.chain.ea @ a
            + 0.5 * (b - self.chain.tb) @ (b - self.chain.tb)
            + 0.5 * self.chain.rho * c @ c
        )

    def grad_callback(self) -> None:
        self.hypergradients.append(self.module.value.grad.detach().clone())


@dataclass
class ChainGraph:
    """A built three-level chain and its engine."""

    chain: Chain
    bottom: ChainBottom
    middle: ChainMiddle
    top: ChainTop
    engine: Any = field(repr=False)

    def run_top_step(self) -> Tensor:
        """Run engine iterations until the top steps once; return its total gradient."""
        before = len(self.top.hypergradients)
        while len(self.top.hypergradients) == before:
            self.engine.global_step += 1
            self.engine.train_step()
        return self.top.hypergradients[-1]


def chain_graph(
    chain: Chain,
    estimator: str,
    bottom_unroll: int = 1,
    lr: float = 0.1,
    solve_exactly: bool = True,
    **options: Any,
) -> ChainGraph:
    """The three-level chain in a GraphEngine, ``estimator`` on both lower levels."""
    top_value = Value(chain.theta0())
    bottom = ChainBottom(chain, top_value, lr, bottom_unroll, solve_exactly)
    middle = ChainMiddle(chain, bottom.module, lr, 1, solve_exactly)
    top = ChainTop(chain, top_value, bottom.module, middle.module)
    for node in (bottom, middle):
        use_estimator(node, estimator, **options)
    engine = GraphEngine(
        [bottom, middle, top],
        {"u2l": {top: [bottom]}, "l2u": {bottom: [middle, top], middle: [top]}},
        torch.device("cpu"),
    )
    return ChainGraph(chain, bottom, middle, top, engine)


# ----------------------------------------------------------------------------------------------
# (d) the nested three-level problem, through the public graph API
# ----------------------------------------------------------------------------------------------

#: a node's estimator as GraphBuilder.node takes it: a name, or a mapping with type and options
EstimatorChoice = str | Mapping[str, Any]


@dataclass
class NestedGraph:
    """The nested problem built by :class:`~metamask.compose.GraphBuilder` (custom nodes)."""

    problem: Nested
    graph: Graph

    def run_top_step(self) -> Tensor:
        """One engine iteration (u, v, then theta step once); theta's total gradient."""
        self.graph.step()
        top = self.graph.nodes["theta"]
        assert top.last_gradients is not None, "theta did not step"
        return top.last_gradients[0]


def nested_graph(
    problem: Nested,
    estimator: EstimatorChoice = "cg",
    bottom: EstimatorChoice | None = None,
    approximate: bool = False,
    u2l: Mapping[str, list[str]] | None = None,
    l2u: Mapping[str, list[str]] | None = None,
) -> NestedGraph:
    """``problem`` as three custom nodes ``u``, ``v``, ``theta`` composed with GraphBuilder.

    ``estimator`` is the middle node's (``v``), ``bottom`` the lowest's (``u``; default: the
    same). Edges default to the issue's ``u2l {v: [u], theta: [v, u]}``, ``l2u {u: [v], v:
    [theta]}``. Each level starts at its optimum for ``theta0`` (``v*(theta0)``, ``u*(v*)``)
    and steps plain SGD without weight decay, so the gradients there are zero and one engine
    iteration leaves them in place: ``theta``'s implicit estimators are evaluated where the
    implicit function theorem holds. ``theta``'s gradient is read from ``last_gradients``.
    Raises what ``GraphBuilder.build`` raises (refused estimator x shape combinations).
    """
    theta0 = problem.theta0()
    v0 = problem.solve_v(theta0)
    u_mod, v_mod, t_mod = Value(problem.solve_u(v0)), Value(v0), Value(theta0)
    builder = new_graph(None, steps=1, log_every=1, name="nested", source="<nested>")
    sgd = {"type": "sgd", "lr": 0.1, "weight_decay": 0.0}
    builder.node(
        "u",
        module=u_mod,
        loss=lambda batch: problem.bottom_loss(u_mod.value, v_mod.value),
        optimizer=sgd,
        hypergradient=estimator if bottom is None else bottom,
    )
    builder.node(
        "v",
        module=v_mod,
        loss=lambda batch: problem.middle_loss(v_mod.value, u_mod.value, t_mod.value),
        optimizer=sgd,
        hypergradient=estimator,
        approximate=approximate,
    )
    builder.node(
        "theta",
        module=t_mod,
        loss=lambda batch: problem.top_loss(t_mod.value, v_mod.value, u_mod.value),
        optimizer={**sgd, "lr": 1e-12},
    )
    for upper, lowers in (u2l or {"v": ["u"], "theta": ["v", "u"]}).items():
        builder.u2l(upper, *lowers)
    for lower, uppers in (l2u or {"u": ["v"], "v": ["theta"]}).items():
        builder.l2u(lower, *uppers)
    graph = builder.build()
    graph.nodes["theta"].record_gradients = True
    return NestedGraph(problem, graph)
