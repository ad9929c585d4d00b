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
- Under data parallelism (:mod:`metamask.distributed`) the module is not wrapped in DDP: Betty
  differentiates with ``torch.autograd.grad``, which never fires DDP's reducer hooks, and
  nodes share modules (MetaMAE's inner and outer nodes share the auto-encoder), which DDP
  would wrap twice. Each node instead starts from rank 0's values and averages its gradients
  across processes right before its optimizer step; loss terms are averaged too, so every
  process sees the same metrics and stops (or skips) on the same non-finite value.
- :meth:`Node.state_dict` holds everything a resumed run needs: module, optimizer, scheduler,
  AMP scaler, Betty's step counter and flags, and the data position of every loader.
  Node types with more state override :meth:`Node.extra_state` / :meth:`Node.load_extra_state`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from betty.configs import Config
from betty.problems import ImplicitProblem
from torch import nn

from metamask import distributed, precision
from metamask.errors import NonFiniteError
from metamask.hypergrad.paths import path_gradient
from metamask.hypergrad.registry import reads_applied_grads

#: ``hook(node, loss, paths)`` before a node's gradients; returns what to run after them
BackwardHook = Callable[["Node", torch.Tensor, Sequence[Sequence[Any]]], Callable[[], None] | None]
#: ``hook(node)`` before a node's step; returns what to run after it (or None)
StepHook = Callable[["Node"], Callable[[], None] | None]


class Node(ImplicitProblem):
    """A Betty problem node. Subclasses implement ``training_step(batch) -> {"loss": ..., ...}``."""

    #: True when the gradient through this node's solution already lives in autograd's graph
    #: (e.g. MetaMAE's differentiable latent adaptation), so upper nodes add no estimator term.
    hypergradient_in_graph = False

    #: names of the estimators that may differentiate through this node (None: any); checked
    #: when the graph is built (metamask.nodes.differentiable.check_estimator_support)
    supported_estimators: frozenset[str] | None = None

    #: True when every re-evaluation of this node's loss at other values of its own
    #: parameters reads the *same* upstream output tensor (see
    #: :class:`~metamask.nodes.feature_reuse.FeatureReuse`): finite-difference estimators
    #: then differentiate the difference of their two evaluations in one backward, which
    #: walks the upstream graph once instead of twice (both downstream graphs live at once)
    shares_upstream_forward = False

    #: the explicit lowers whose responses this node's loss reads (u2l edges from it), and the
    #: nodes its own response depends on: set by the graph builder (metamask.compose) for the
    #: total Hessian of nested shapes (metamask.hypergrad.nested); empty outside a built graph
    nested_lowers: tuple[Node, ...] = ()
    responds_to: tuple[Node, ...] = ()

    #: True: :meth:`backward` keeps the total gradient it set on each trainable parameter (the
    #: direct term plus every path's hypergradient) in :attr:`last_gradients`
    record_gradients: bool = False
    #: the gradient of each trainable parameter from the last backward (``record_gradients``)
    last_gradients: list[torch.Tensor] | None = None

    #: the indirect gradient of each trainable parameter from this node's last backward: the
    #: sum over its explicit paths of the composed estimator terms (detached; None before the
    #: first backward, or without explicit paths); read it with ``Graph.hypergradient``
    last_hypergradient: list[torch.Tensor] | None = None

    #: a non-finite loss term or gradient: "stop" raises NonFiniteError; "skip" drops the
    #: batch (no update) and counts it in :attr:`skipped` (set from ``train.on_nonfinite``)
    on_nonfinite: str = "stop"

    #: ``train.precision`` (metamask.precision): the node's step runs under autocast for bf16 /
    #: fp16, its backward outside it; set with :meth:`set_precision`
    compute_precision: str = "fp32"

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
        #: the learning rate that step applied to each trainable parameter, kept with
        #: :attr:`applied_grads` (the scheduler has moved the optimizer's on by the time an
        #: upper node runs the estimator; a cosine schedule's last step leaves it at 0)
        self.applied_lrs: list[float] | None = None
        #: batches dropped because of a non-finite value (``on_nonfinite: skip``)
        self.skipped = 0
        #: called after each backward with the node and its backward's arguments (the
        #: hypergradient audit reads the composed gradient there); set by the trainer
        self.backward_hooks: list[BackwardHook] = []
        #: called before each step with the node; each returns what to run after the step
        #: (on a step not dropped by the guard), under the step's precision; set by the trainer
        self.step_hooks: list[StepHook] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a node type that overrides the step's templates instead of their hooks."""
        super().__init_subclass__(**kwargs)
        for template, hook in (("one_step_descent", "descend"), ("backward", "compute_gradients")):
            if template in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides Node.{template}, the step every node runs "
                    f"(precision, non-finite guard, hooks); override Node.{hook} instead"
                )

    def set_precision(self, mode: str) -> None:
        """Run this node's steps in ``mode`` (fp32 | bf16 | fp16); fp16 gives a node with
        parameters its own dynamic loss scaler (saved in :meth:`state_dict`)."""
        self.compute_precision = mode
        has_params = bool(self.trainable_parameters())
        self.scaler = precision.make_scaler(self.device, mode) if has_params else None

    # -- what this node optimizes --------------------------------------------------------------

    def trainable_parameters(self) -> list[torch.Tensor]:
        return [p for p in self.module.parameters() if p.requires_grad]

    # -- Betty patches -------------------------------------------------------------------------

    def patch_module(self) -> None:
        """Place the module; under data parallelism, start from rank 0's values (no DDP wrap)."""
        self.module.to(self.device)
        if distributed.current() is not None:
            distributed.broadcast_([*self.module.parameters(), *self.module.buffers()])

    def patch_data_loader(self, loader: Any) -> Any:
        """Keep the loader: metamask's samplers shard batches themselves (metamask.sampling);
        on CUDA it hands out batches copied from pinned memory without blocking."""
        if callable(getattr(loader, "to_device", None)):
            loader.to_device(self.device)
        return loader

    def patch_optimizer(self) -> None:
        """Keep the optimizer as built (Betty's rebuild breaks AdamW and drops param groups)."""

    def patch_scheduler(self) -> None:
        """Keep the scheduler as built (it is bound to the optimizer we kept)."""

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Betty's step, after keeping the gradients it applies when the estimator reads them.

        (Betty records them only when ``config.type == "sama"``; metamask dispatches
        estimators itself, so the node records them for any estimator that asks.)
        """
        if distributed.current() is not None:
            params = self.trainable_parameters()
            distributed.mean_([p.grad for p in params if p.grad is not None])
            if self.scaler is None:
                self._check_grads(params)
        if self.scaler is not None:
            self._scaled_step()
            return
        if reads_applied_grads(self.estimator):
            self._record_applied(self.trainable_parameters())
        super().optimizer_step(*args, **kwargs)

    def _record_applied(self, params: Sequence[torch.Tensor]) -> None:
        """Keep the gradients and learning rates the coming optimizer step applies to
        ``params`` (:attr:`applied_grads`, :attr:`applied_lrs`)."""
        self.applied_grads = [
            torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params
        ]
        assert self.optimizer is not None
        lrs = {id(p): float(g["lr"]) for g in self.optimizer.param_groups for p in g["params"]}
        self.applied_lrs = [lrs[id(p)] for p in params]

    def _scaled_step(self) -> None:
        """fp16: unscale, then step unless the gradients overflowed; a skipped step is counted
        in :attr:`skipped` and logged (``overflow``, and the ``loss_scale`` it stepped at)."""
        assert self.scaler is not None and self.optimizer is not None
        scale = self.scaler.get_scale()
        self.scaler.unscale_(self.optimizer)
        params = self.trainable_parameters()
        grads = [p.grad for p in params if p.grad is not None]
        norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
        overflow = not math.isfinite(norm)
        if not overflow:
            self.last_metrics["grad_norm"] = norm
            if reads_applied_grads(self.estimator):
                self._record_applied(params)
        self.scaler.step(self.optimizer)  # skips the update itself when a gradient is not finite
        self.scaler.update()  # halves the scale after an overflow, grows it after a clean run
        precision.check_loss_scale(self.scaler, self.name, self._count)  # a floor: stop
        if overflow:
            self.skipped += 1
            self.last_metrics["overflow"] = 1.0
        self.last_metrics["loss_scale"] = scale

    def record_metrics(self, terms: dict[str, Any]) -> dict[str, float]:
        """Keep this step's loss terms as floats; NonFiniteError names the first bad term.

        Under data parallelism the terms are averaged across processes first, so that every
        process logs the same numbers and raises on the same step. The tensors among the
        terms reach the host in one transfer (one device synchronisation per step, which the
        non-finite check needs on every step, logged or not; float64 holds each exactly).
        """
        numbers = _to_floats(list(terms.values()))
        if distributed.current() is not None and numbers:
            averaged = torch.tensor(numbers, dtype=torch.float64, device=self.device)
            distributed.mean_([averaged])
            numbers = averaged.tolist()
        metrics: dict[str, float] = {}
        for key, number in zip(terms, numbers, strict=True):
            if not math.isfinite(number):
                raise NonFiniteError(
                    f"node '{self.name}', local step {self._count}: loss term '{key}' is {number}"
                )
            metrics[key] = number
        self.last_metrics = metrics
        return metrics

    # -- the step: templates Betty calls, and the hooks node types override -------------------
    #
    # Betty's engine calls ``one_step_descent`` on each node, and Betty's step calls
    # ``backward``. Both are templates that every node runs as written here; node types
    # change what happens inside them through ``descend`` and ``compute_gradients``:
    #
    #   one_step_descent(batch)                  (template)
    #     under autocast (train.precision)
    #       step_hooks(node)                     (the trainer's: the audit's shadow steps)
    #       guard (on_nonfinite: skip)           drops a batch whose loss/gradient is not finite
    #         descend(batch)                     (hook; default: Betty's step)
    #           ... get_loss -> backward -> optimizer_step
    #       what the step_hooks returned         (unless the guard dropped the batch)
    #   backward(loss, params, paths, ...)       (template)
    #     outside autocast (fp32 for in-graph hypergradients)
    #       compute_gradients(...)               (hook; default: direct + one term per path)
    #     backward_hooks(node, loss, paths)      (the trainer's: the hypergradient audit)

    def one_step_descent(self, batch: Any = None) -> dict[str, float]:
        """One step of this node: :meth:`descend` under the node's precision and, with
        ``on_nonfinite: skip``, the non-finite guard (:meth:`_skip_guard`)."""
        with precision.autocast(self.device, self.compute_precision):
            after = [hook(self) for hook in self.step_hooks]
            skipped = self.skipped
            guarded = self.on_nonfinite == "skip"
            result = self._skip_guard(batch) if guarded else self.descend(batch)
            if self.skipped == skipped:
                for finish in after:
                    if finish is not None:
                        finish()
            return result

    def descend(self, batch: Any = None) -> dict[str, float]:
        """The node type's step: load a batch, loss, gradients, update (Betty's, by default).

        Override this, not :meth:`one_step_descent`, in a node type with a step of its own.
        """
        result: dict[str, float] = super().one_step_descent(batch)
        return result

    def _skip_guard(self, batch: Any) -> dict[str, float]:
        """:meth:`descend`; a NonFiniteError drops the batch: no parameter update, gradients
        cleared, buffers the forward pass changed (BatchNorm statistics of the bad batch) put
        back, the skip counted."""
        buffers = list(self.module.buffers())
        saved = [b.detach().clone() for b in buffers]
        try:
            return self.descend(batch)
        except NonFiniteError:
            self.zero_grad()
            with torch.no_grad():
                for buffer, value in zip(buffers, saved, strict=True):
                    buffer.copy_(value)
            self.skipped += 1
            self.last_metrics = {"skipped": float(self.skipped)}
            return self.last_metrics

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
        """:meth:`compute_gradients` with autocast off, then :attr:`backward_hooks`.

        The backward ops keep the dtypes the forward chose, and the estimators' own passes run
        in fp32. A backward through an in-graph hypergradient (MetaMAE's outer node: the double
        backward through the support pass) runs wholly in fp32
        (:func:`metamask.precision.full_precision`: no TF32 either). Each hook runs before the
        gradients are computed and returns a callable run after them (or None): the audit
        computes its reference on the loss's graph before the estimators free it.
        """
        after = [hook(self, loss, paths) for hook in self.backward_hooks]
        strict = any(path[1].hypergradient_in_graph for path in paths)
        region = precision.full_precision() if strict else precision.no_autocast()
        with region:
            self.compute_gradients(loss, params, paths, create_graph, retain_graph, allow_unused)
        for finish in after:
            if finish is not None:
                finish()

    def compute_gradients(
        self,
        loss: torch.Tensor,
        params: Sequence[torch.Tensor],
        paths: Sequence[Sequence[Any]],
        create_graph: bool = False,
        retain_graph: bool = True,
        allow_unused: bool = True,
    ) -> None:
        """Direct gradient of this node's loss, plus one estimator term per upper->lower path
        (the hook of :meth:`backward`; node types with other gradients override it)."""
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
        composed: list[torch.Tensor] | None = None
        for i, path in enumerate(explicit):
            last = i == len(explicit) - 1
            indirect = path_gradient(loss, path, retain_graph=retain_graph or not last)
            self.set_grads(params, indirect)
            composed = indirect if composed is None else add_lists(composed, indirect)
        if composed is not None:
            self.keep_hypergradient(composed)
        if self.record_gradients:
            self.last_gradients = [
                torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params
            ]
        if distributed.current() is None and self.scaler is None:  # else in optimizer_step
            self._check_grads(params)

    def keep_hypergradient(self, indirect: Sequence[torch.Tensor]) -> None:
        """Keep this backward's composed indirect gradient (:attr:`last_hypergradient`)."""
        self.last_hypergradient = [g.detach() for g in indirect]

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
        """Everything a resumed run needs from this node (tensors and plain data only)."""
        state: dict[str, Any] = {
            "count": self._count,
            "skipped": self.skipped,
            "betty": {
                "inner_loop_start": bool(self._inner_loop_start),
                "ready": list(self.ready or []),  # None before the engine initialises the node
            },
        }
        if self.trainable_parameters():
            state["module"] = self.module.state_dict()
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.train_data_loader is not None:
            state["data"] = {
                "epochs": list(self.epoch_counter or []),
                "positions": [_loader_position(self.name, loader) for loader in self.loaders],
            }
        extra = self.extra_state()
        if extra:
            state["extra"] = extra
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; data iterators restart at the saved position."""
        self._count = int(state_dict["count"])
        self.skipped = int(state_dict.get("skipped", 0))
        betty = state_dict.get("betty")
        if betty is not None:
            self._inner_loop_start = bool(betty["inner_loop_start"])
            self.ready = [bool(flag) for flag in betty["ready"]]
        if "module" in state_dict:
            self.module.load_state_dict(state_dict["module"])
        for key in ("optimizer", "scheduler", "scaler"):
            target = getattr(self, key)
            if target is not None and key in state_dict:
                target.load_state_dict(state_dict[key])
        data = state_dict.get("data")
        if data is not None and self.train_data_loader is not None:
            for loader, position in zip(self.loaders, data["positions"], strict=True):
                loader.load_state_dict(position)
            self.epoch_counter = [int(e) for e in data["epochs"]]
            self.train_data_iterator = [iter(loader) for loader in self.loaders]
        self.load_extra_state(state_dict.get("extra", {}))

    def extra_state(self) -> dict[str, Any]:
        """Node-type state beyond module, optimizer, counters and data (tensors, plain data).

        Override with :meth:`load_extra_state` when a node type keeps state across engine
        iterations that the base class does not know of (e.g. a private generator).
        """
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    @property
    def loaders(self) -> list[Any]:
        """This node's data loaders (Betty keeps a list once the engine is built)."""
        loaders = self.train_data_loader
        if loaders is None:
            return []
        return list(loaders) if isinstance(loaders, list | tuple) else [loaders]

    @property
    def local_step(self) -> int:
        """How many steps this node has taken."""
        return int(self._count)


def add_lists(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [x + y for x, y in zip(a, b, strict=True)]


def _to_floats(values: Sequence[Any]) -> list[float]:
    """Scalars (tensors or numbers) as Python floats, the tensors in one device transfer."""
    found = [v for v in values if torch.is_tensor(v)]
    tensors = [v.detach().reshape(()).to(found[0].device, torch.float64) for v in found]
    moved = iter(torch.stack(tensors).tolist() if tensors else [])
    return [next(moved) if torch.is_tensor(v) else float(v) for v in values]


def _loader_position(node: str, loader: Any) -> dict[str, Any]:
    """A loader's saved data position; loaders without one cannot be resumed exactly."""
    if not callable(getattr(loader, "state_dict", None)):
        raise TypeError(
            f"node '{node}': its data loader ({type(loader).__name__}) cannot save its position;"
            " build node loaders with BuildContext.loader (metamask.sampling.ResumableLoader)"
        )
    position: dict[str, Any] = loader.state_dict()
    return position
