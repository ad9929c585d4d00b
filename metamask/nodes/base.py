"""The base of every metamask node: a Betty ``ImplicitProblem`` with metamask's fixes and hooks.

What this layer changes in betty-ml 0.2.1, and why (see docs/architecture.md):
- Optimizers and schedulers are kept as built. Betty rebuilds every optimizer as
  ``type(opt)(params, **opt.defaults)``, which raises a TypeError for ``torch.optim.AdamW`` on
  current torch (``decoupled_weight_decay``) and silently merges all parameter groups (no-decay
  groups are lost).
- Hypergradients along graph paths go through :mod:`metamask.hypergrad`'s registry instead of
  Betty's hard-coded table, always with ``allow_unused`` (Betty's ``neumann``/``cg`` raise when
  an upper parameter does not reach a lower loss).
- A non-finite loss term or gradient stops training with :class:`NonFiniteError` naming the
  node, the step and the term, instead of silently poisoning the parameters.
- Each step's loss terms and gradient norm are kept in :attr:`Node.last_metrics` for the trainer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from betty.configs import Config
from betty.problems import ImplicitProblem
from torch import nn

from metamask.errors import NonFiniteError
from metamask.hypergrad.paths import path_gradient
from metamask.hypergrad.registry import reads_applied_grads


class Node(ImplicitProblem):
    """A Betty problem node. Subclasses implement ``training_step(batch) -> {"loss": ..., ...}``."""

    #: True when the gradient through this node's solution already lives in autograd's graph
    #: (e.g. MetaMAE's differentiable latent adaptation), so upper nodes add no estimator term.
    hypergradient_in_graph = False

    def __init__(
        self,
        name: str,
        module: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        loader: Any = None,
        unroll_steps: int = 1,
        estimator: str = "first_order",
        estimator_options: Any = None,
        retain_graph: bool = False,
    ) -> None:
        config = Config(
            type="darts",  # unused: metamask dispatches estimators itself (see `backward`)
            unroll_steps=unroll_steps,
            first_order=True,  # in Betty this flag means "compute indirect gradients"
            retain_graph=retain_graph,
            allow_unused=True,
        )
        super().__init__(name, config, module, optimizer, scheduler, loader)
        self.estimator = estimator
        self.estimator_options = estimator_options
        self.last_metrics: dict[str, float] = {}
        #: the gradients the last optimizer step applied, kept only when this node's estimator
        #: reads them (``sama`` preconditions with Adam's last update); otherwise None
        self.applied_grads: list[torch.Tensor] | None = None

    # -- what this node optimizes --------------------------------------------------------------

    def trainable_parameters(self) -> list[torch.Tensor]:
        return [p for p in self.module.parameters() if p.requires_grad]

    # -- Betty patches -------------------------------------------------------------------------

    def patch_optimizer(self) -> None:
        """Keep the optimizer as built (Betty's rebuild breaks AdamW and drops param groups)."""

    def patch_scheduler(self) -> None:
        """Keep the scheduler as built (it is bound to the optimizer we kept)."""

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Betty's step, after keeping the gradients it applies when the estimator reads them.

        (Betty records them only when ``config.type == "sama"``; metamask dispatches
        estimators itself, so the node records them for any estimator that asks.)
        """
        if reads_applied_grads(self.estimator):
            self.applied_grads = [
                torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
                for p in self.trainable_parameters()
            ]
        super().optimizer_step(*args, **kwargs)

    def record_metrics(self, terms: dict[str, Any]) -> dict[str, float]:
        """Keep this step's loss terms as floats; NonFiniteError names the first bad term."""
        metrics: dict[str, float] = {}
        for key, value in terms.items():
            number = float(value.detach()) if torch.is_tensor(value) else float(value)
            if not math.isfinite(number):
                raise NonFiniteError(
                    f"node '{self.name}', local step {self._count}: loss term '{key}' is {number}"
                )
            metrics[key] = number
        self.last_metrics = metrics
        return metrics

    def get_loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.training_step_exec(batch)
        terms = out if isinstance(out, dict) else {"loss": out}
        metrics = self.record_metrics(terms)
        loss = terms["loss"]
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        return loss / self.gas, metrics

    def backward(
        self,
        loss: torch.Tensor,
        params: Sequence[torch.Tensor],
        paths: Sequence[Sequence[Any]],
        create_graph: bool = False,
        retain_graph: bool = True,
        allow_unused: bool = True,
    ) -> None:
        """Direct gradient of this node's loss, plus one estimator term per upper->lower path."""
        params = list(params)
        explicit = [path for path in paths if not path[1].hypergradient_in_graph]
        grads = torch.autograd.grad(
            loss,
            params,
            create_graph=create_graph,
            retain_graph=retain_graph or bool(explicit),
            allow_unused=True,
        )
        self.set_grads(params, grads)
        for i, path in enumerate(explicit):
            last = i == len(explicit) - 1
            self.set_grads(params, path_gradient(loss, path, retain_graph=retain_graph or not last))
        self._check_grads(params)

    def _check_grads(self, params: Sequence[torch.Tensor]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        norm = float(torch.nn.utils.get_total_norm(grads))
        if not math.isfinite(norm):
            bad = next(
                (
                    i
                    for i, p in enumerate(params)
                    if p.grad is not None and not p.grad.isfinite().all()
                ),
                -1,
            )
            raise NonFiniteError(
                f"node '{self.name}', local step {self._count}: gradient of parameter #{bad} is "
                "not finite"
            )
        self.last_metrics["grad_norm"] = norm

    # -- checkpoints ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"count": self._count}
        if self.trainable_parameters():
            state["module"] = self.module.state_dict()
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._count = int(state_dict["count"])
        if "module" in state_dict:
            self.module.load_state_dict(state_dict["module"])
        for key in ("optimizer", "scheduler", "scaler"):
            target = getattr(self, key)
            if target is not None and key in state_dict:
                target.load_state_dict(state_dict[key])

    @property
    def local_step(self) -> int:
        """How many steps this node has taken."""
        return int(self._count)
