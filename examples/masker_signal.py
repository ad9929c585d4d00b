"""Issue 23's horizon and noise levers: how much the exact masker hypergradient prefers the
informative tokens, against its window K and its batch, with what it costs.

    python examples/masker_signal.py                  # small backbone, K 1 2 4 8, 32 draws
    python examples/masker_signal.py --draws 16 --horizons 1 2 4
    python examples/masker_signal.py --draws 32 --crn-draws 16   # fewer crn draws
    python examples/masker_signal.py --quick          # smoke test: tiny, K 1 2, 4 draws

MLO-MAE on ``controlled_patches`` (``problems/mlomae-controlled_patches.yaml``: the class sits
in 8 known patches of 64, the rest is matched noise), with the exact ``unrolled`` estimator on
both of the masker's edges (pretrain and head), the published ``flat_mlp`` masker, the
pretraining learning rate without its warm-up (every step of a window at the spec's 1e-3).
A *hypergradient* at window K is the mask node's indirect gradient after one cycle: K
pretraining steps (``graph.nodes.pretrain.unroll_steps: K``), one head step, then the mask
node differentiates the head's split-B loss back through all of them. Every hypergradient is
taken at the same state, the untrained graph of ``--seed`` (built afresh for each one), on its
own batches: draw ``j`` reads every node's loader from the start of epoch ``j`` (independent
permutations). Two ways to draw the random numbers inside the cycle (the head's dropout; the
masks are the masker's top-k and the encoder's dropout is 0 in this spec, so dropout in the
head is the only random draw):

- ``independent``: draw ``j`` seeds the global generator with ``1000 + j``;
- ``crn`` (common random numbers): every draw seeds it with ``999``; draw ``j`` reads the same
  batches as the independent draw ``j``, so the pair differs by the dropout draws alone.

A hypergradient batch of m averages m draws (disjoint groups ``[0, m)``, ``[m, 2m)``, ...;
accumulation). For every (K, draws, m), over the complete groups:

- ``auroc``: the change of the masking probabilities that a small descent step along the
  averaged gradient makes on the 240 test images, ``dp = -J g`` (J: the probabilities'
  Jacobian in the masker's parameters at the untrained state; exact, forward mode, float64),
  per image P(dp at an informative token > dp at a noise token), averaged over images; mean
  and sd over the groups (0.5: no preference; above: the step masks the informative tokens
  more; ``random`` rows: isotropic Gaussian directions, the control);
- ``cosine``, ``sign``: between the averaged gradients of two different groups (independent
  batches), their cosine and the share of parameters whose signs agree (0.5: unrelated), mean
  over all pairs of groups; ``cosine_pred``: the same cosine predicted from all single draws,
  ``|mu|^2 / (|mu|^2 + tr(Sigma) / m)``, with ``|mu|^2`` the mean inner product of two
  different draws (unbiased) and ``tr(Sigma)`` the mean squared norm less it (the one estimate
  when fewer than two groups are complete); ``map_cosine``: the cosine of two groups' ``dp``;
- ``uniform``, ``positional``, ``per_image``: the shares of ``|dp|^2`` that are a constant per
  image (the all-down or all-up push), a map over positions shared by every image, and the
  rest (what tells images apart);
- ``s / hypergradient`` (median over the draws of one cycle's wall time, 1 thread: measured
  under load) and ``peak MiB`` (the peak resident set of a child process that builds the graph
  and takes one hypergradient; ``+MiB``: over the same child's peak before the cycle).

``dropout_cosine`` (table.json): the cosine between the independent and crn draws with the
same batches, i.e. how much the dropout draws alone move a hypergradient.

Writes under ``--out`` (default ``results/masker_signal``; ``--quick``:
``results/masker_signal-quick``): ``draws/K<k>-<mode>/draw<j>.pt`` (one hypergradient: the
gradient in bfloat16, its ``dp`` and its seconds, with the resolved spec's digest),
``memory/K<k>.json``, ``table.json``, ``table.md`` and ``signal.png``. A draw or memory file
of the same spec is read back, not computed again: a stopped run computes only what is missing.
"""

from __future__ import annotations

import argparse
import copy
import gc
import io
import itertools
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from rich.console import Console

from metamask.checkpoint import atomic_write, write_json
from metamask.compose import build_graph
from metamask.config import RunSpec, load_spec
from metamask.data.base import DataBundle
from metamask.data.embedded.controlled import informative_map
from metamask.errors import MetamaskError
from metamask.experiments import spec_digest, write_text
from metamask.graph import Graph
from metamask.mask_diversity import masking_source
from metamask.pictures.figures import save_figure
from metamask.seeding import seed_everything
from metamask.spec_data import load_pretrain_data

SPEC = Path(__file__).resolve().parent.parent / "problems" / "mlomae-controlled_patches.yaml"
HORIZONS = (1, 2, 4, 8)
BATCHES = (1, 4, 16)
DRAWS = 32
MODES = ("independent", "crn")
CRN_SEED = 999  # every crn draw; the independent draw j uses 1000 + j
RANDOM_DIRECTIONS = 32  # the control: isotropic Gaussian directions in the masker's parameters
QUICK = {"backbone": "tiny", "horizons": (1, 2), "batches": (1, 2), "draws": 4}


def spec_for(window: int, backbone: str, seed: int, overrides: list[str]) -> RunSpec:
    """The controlled MLO-MAE spec at window ``window``, ``unrolled`` on both masker edges."""
    return load_spec(
        SPEC,
        [
            f"seed={seed}",
            f"model.backbone={backbone}",
            "train.threads=1",
            "eval.enabled=false",
            "graph.nodes.pretrain.hypergradient.type=unrolled",
            "graph.nodes.head.hypergradient.type=unrolled",
            f"graph.nodes.pretrain.unroll_steps={window}",
            "graph.nodes.pretrain.optimizer.warmup_steps=0",
            *overrides,
        ],
    )


def fresh_graph(spec: RunSpec, data: DataBundle) -> Graph:
    """The untrained graph of ``spec`` (seeded as ``metamask run`` seeds it), in train mode."""
    seed_everything(spec.seed)
    graph = build_graph(spec, data, torch.device("cpu"))
    graph.train()
    return graph


def flat(tensors: Any) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).float() for t in tensors])


def hypergradient(spec: RunSpec, data: DataBundle, draw: int, mode: str) -> dict[str, Any]:
    """One hypergradient of the masker at the untrained state: every loader from the start of
    epoch ``draw``, the random numbers of ``mode``, one cycle of K engine steps."""
    graph = fresh_graph(spec, data)
    for node in graph.nodes.values():
        for loader in node.loaders:
            loader.load_state_dict({"epoch": draw, "taken": 0})
        node.train_data_iterator = [iter(loader) for loader in node.loaders]
    torch.manual_seed(CRN_SEED if mode == "crn" else 1000 + draw)
    window = spec.graph.nodes["pretrain"].unroll_steps
    started = time.perf_counter()
    for _ in range(window):
        graph.step()
    seconds = time.perf_counter() - started
    gradient = graph.hypergradient("mask")
    return {"names": list(gradient), "grad": flat(gradient.values()), "seconds": seconds}


class Reference:
    """The untrained masker on the test images, and the change ``-J g`` of its probabilities
    that a small descent step along a gradient ``g`` makes (``theta - eta g``, eta -> 0)."""

    def __init__(self, spec: RunSpec, data: DataBundle) -> None:
        graph = fresh_graph(spec, data)
        source = masking_source(graph)
        assert source is not None, f"{spec.name}: no learned masker"
        test = data.test
        x = torch.stack([test[i][0] for i in range(len(test))])  # type: ignore[arg-type]
        graph.mae.eval()
        with torch.no_grad():
            self.tokens = graph.mae.embed(x).double()
        self.masker = copy.deepcopy(source.masker).double().eval()
        self.names = [n for n, p in self.masker.named_parameters() if p.requires_grad]
        self.theta = flat(p for _, p in self.masker.named_parameters() if p.requires_grad)
        self.informative = informative_map(spec.data.dataset)

    def change(self, g: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:
        """``dp = -J g`` (N, L) for a gradient ``g`` in the masker's parameter order: forward
        mode by two reverse passes (``J g = d/du <J^T u, g>``), exact, in float64."""
        if names is not None and names != self.names:
            raise ValueError(f"gradient names {names} are not the masker's {self.names}")
        params = [p for _, p in self.masker.named_parameters() if p.requires_grad]
        with torch.enable_grad():
            prob = self.masker.probabilities(self.tokens)
            u = torch.zeros_like(prob, requires_grad=True)
            vjp = torch.autograd.grad(prob, params, u, create_graph=True)
            inner = (torch.cat([v.reshape(-1) for v in vjp]) * g.double()).sum()
            (jg,) = torch.autograd.grad(inner, u)
        return (-jg).float()


def auroc(dp: np.ndarray, informative: np.ndarray) -> float:
    """Mean over rows of P(dp[informative] > dp[noise]) (ties half) for a map (N, L)."""
    pos, neg = dp[:, informative], dp[:, ~informative]
    greater = (pos[:, :, None] > neg[:, None, :]).mean(axis=(1, 2))
    ties = (pos[:, :, None] == neg[:, None, :]).mean(axis=(1, 2))
    return float((greater + 0.5 * ties).mean())


def shares(dp: np.ndarray) -> dict[str, float]:
    """Orthogonal split of ``|dp|^2`` (N, L): a constant per image (``uniform``), a map over
    positions shared by the images (``positional``), the rest (``per_image``)."""
    dp = dp.astype(np.float64)
    grand = dp.mean()
    image = dp.mean(axis=1, keepdims=True) - grand  # per-image offset
    position = dp.mean(axis=0, keepdims=True) - grand  # per-position map
    rest = dp - grand - image - position
    n, length = dp.shape
    total = float((dp**2).sum()) or 1.0
    return {
        "uniform": (n * length * grand**2 + length * float((image**2).sum())) / total,
        "positional": n * float((position**2).sum()) / total,
        "per_image": float((rest**2).sum()) / total,
    }


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))


def sign_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((torch.sign(a) == torch.sign(b)).double().mean())


def predicted_cosine(grads: torch.Tensor, m: int) -> float:
    """Expected cosine of two independent m-averages from single draws (rows of ``grads``):
    ``|mu|^2 / (|mu|^2 + tr(Sigma) / m)``; ``|mu|^2`` is the mean inner product of two
    different draws (unbiased), ``tr(Sigma)`` the mean squared norm less ``|mu|^2``."""
    n = grads.shape[0]
    if n < 2:
        return math.nan
    g = grads.double()
    total, squares = g.sum(0), float((g * g).sum())
    mu2 = (float(total @ total) - squares) / (n * (n - 1))
    trace = squares / n - mu2
    return mu2 / (mu2 + trace / m) if mu2 + trace / m > 0 else math.nan


def summarize(grads: torch.Tensor, changes: np.ndarray, m: int, informative: np.ndarray) -> Any:
    """The measures of the module docstring for m-averages of the draws (rows)."""
    groups = grads.shape[0] // m
    if groups < 1:
        return None
    means = [grads[k * m : (k + 1) * m].mean(0) for k in range(groups)]
    maps = [changes[k * m : (k + 1) * m].mean(0) for k in range(groups)]
    aurocs = [auroc(dp, informative) for dp in maps]
    split = [shares(dp) for dp in maps]
    pairs = list(itertools.combinations(range(groups), 2))

    def over_pairs(measure: Any, items: list[Any]) -> float:
        return (
            float(np.mean([measure(items[a], items[b]) for a, b in pairs])) if pairs else math.nan
        )

    flat_maps = [torch.from_numpy(dp).flatten() for dp in maps]
    row: dict[str, Any] = {
        "m": m,
        "groups": groups,
        "auroc": float(np.mean(aurocs)),
        "auroc_sd": float(np.std(aurocs, ddof=1)) if groups > 1 else math.nan,
        "aurocs": aurocs,
        "cosine": over_pairs(cosine, means),
        "sign": over_pairs(sign_agreement, means),
        "map_cosine": over_pairs(cosine, flat_maps),
        "cosine_pred": predicted_cosine(grads[: groups * m], m),
    }
    for key in ("uniform", "positional", "per_image"):
        row[key] = float(np.mean([s[key] for s in split]))
    return row


def save_draw(path: Path, record: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(record, buffer)
    data = buffer.getvalue()
    atomic_write(path, lambda handle: handle.write(data))


def load_draw(path: Path, digest: str) -> dict[str, Any] | None:
    """The draw in ``path`` when it was computed for the spec of ``digest``, else None."""
    try:
        record = torch.load(path, weights_only=True) if path.is_file() else None
    except Exception:  # a torn or foreign file: computed again
        return None
    return record if isinstance(record, dict) and record.get("digest") == digest else None


def memory_child(payload: dict[str, Any]) -> dict[str, float]:
    """Peak resident set (MiB) before and after one hypergradient, in this fresh process."""
    torch.set_num_threads(1)
    spec = spec_for(payload["window"], payload["backbone"], payload["seed"], payload["set"])
    data = load_pretrain_data(spec)
    graph = fresh_graph(spec, data)
    before = _vmhwm_mib()
    for _ in range(payload["window"]):
        graph.step()
    graph.hypergradient("mask")
    return {"peak_mib": _vmhwm_mib(), "before_mib": before}


def _vmhwm_mib() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def peak_memory(args: argparse.Namespace, window: int, digest: str) -> dict[str, Any]:
    """``memory/K<k>.json``, read back or measured in a child process; computed: bool."""
    path = args.out / "memory" / f"K{window}.json"
    try:
        known = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        known = None
    if isinstance(known, dict) and known.get("digest") == digest:
        return {**known, "computed": False}
    payload = {"window": window, "backbone": args.backbone, "seed": args.seed, "set": args.set}
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", json.dumps(payload)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = {**json.loads(out.stdout.strip().splitlines()[-1]), "digest": digest}
    write_json(path, result)
    return {**result, "computed": True}


def markdown(
    rows: list[dict[str, Any]], control: dict[str, Any], command: str, backbone: str
) -> str:
    lines = [
        "# The exact masker hypergradient on controlled_patches: horizon and noise",
        "",
        f"`{command}`",
        "",
        f"Backbone `{backbone}`, untrained graph, `unrolled` on both masker edges. auroc: of "
        "the probability change a descent step makes, informative vs noise tokens, per image "
        "(0.5: none), mean ± sd over groups; cosine / sign: between two groups' averaged "
        "gradients (pred: from single draws); shares of |dp|^2. Seconds: one hypergradient, "
        "1 thread, measured under load.",
        "",
        "| K | random numbers | draws | m | groups | auroc | cosine | cosine (pred) | sign "
        "| map cosine | uniform | positional | per image | s / hypergradient "
        "| peak MiB (+cycle) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
        "| --- |",
    ]

    def num(value: float, digits: int = 3) -> str:
        return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    for r in rows:
        sd = "" if math.isnan(r["auroc_sd"]) else f" ± {r['auroc_sd']:.3f}"
        lines.append(
            f"| {r['K']} | {r['mode']} | {r['draws']} | {r['m']} | {r['groups']} | "
            f"{r['auroc']:.3f}{sd} | "
            f"{num(r['cosine'])} | {num(r['cosine_pred'])} | {num(r['sign'])} | "
            f"{num(r['map_cosine'])} | {r['uniform']:.2f} | {r['positional']:.2f} | "
            f"{r['per_image']:.2f} | {r['seconds'] * r['m']:.1f} | "
            f"{r['peak_mib']:.0f} (+{r['peak_mib'] - r['before_mib']:.0f}) |"
        )
    lines.append(
        f"| – | random direction | {control['groups']} | 1 | {control['groups']} | "
        f"{control['auroc']:.3f} ± "
        f"{control['auroc_sd']:.3f} | – | – | – | – | {control['uniform']:.2f} | "
        f"{control['positional']:.2f} | {control['per_image']:.2f} | – | – |"
    )
    lines.append("")
    lines.append(
        "s / hypergradient is for the m-average (m cycles); draws: independent or crn "
        "(common random numbers: one dropout draw for every hypergradient)."
    )
    return "\n".join(lines) + "\n"


def picture(rows: list[dict[str, Any]], control: dict[str, Any], path: Path, title: str) -> Path:
    """signal.png: auroc and cosine against K per (draws, m), and the cost per K."""
    figure, (ax_auroc, ax_cos, ax_cost) = plt.subplots(
        1, 3, figsize=(15, 4.6), layout="constrained"
    )
    styles = {"independent": "-", "crn": "--"}
    for (mode, m), group in itertools.groupby(
        sorted(rows, key=lambda r: (r["mode"], r["m"], r["K"])), key=lambda r: (r["mode"], r["m"])
    ):
        group = list(group)
        shift = 1.0 + 0.03 * (list(MODES).index(mode) * 3 + math.log2(m) / 2 - 1.5)
        ks = [r["K"] * shift for r in group]  # side by side, so the error bars stay apart
        label = f"{mode}, m={m}"
        mean = np.array([r["auroc"] for r in group])
        sd = np.array([0.0 if math.isnan(r["auroc_sd"]) else r["auroc_sd"] for r in group])
        line = ax_auroc.errorbar(ks, mean, yerr=sd, linestyle=styles[mode], marker="o",
                                 capsize=3, label=label)  # fmt: skip
        colour = line[0].get_color()
        ax_cos.plot(ks, [r["cosine_pred"] for r in group], styles[mode], marker="o",
                    color=colour, label=label)  # fmt: skip
    ax_auroc.axhspan(control["auroc"] - control["auroc_sd"], control["auroc"] + control["auroc_sd"],
                     color="grey", alpha=0.2, label="random direction (± sd)")  # fmt: skip
    ax_auroc.axhline(0.5, color="grey", linewidth=0.8)
    ax_auroc.set_ylabel("AUROC of dp: informative vs noise tokens")
    ax_cos.axhline(0.0, color="grey", linewidth=0.8)
    ax_cos.set_ylabel("cosine of two independent m-averages (predicted)")
    one = sorted({r["K"]: r for r in rows if r["mode"] == "independent" and r["m"] == 1}.values(),
                 key=lambda r: r["K"])  # fmt: skip
    ks = [r["K"] for r in one]
    ax_cost.plot(ks, [r["seconds"] for r in one], "-o", color="black", label="s / hypergradient")
    ax_cost.set_ylabel("s per hypergradient (m = 1, under load)")
    ax_mem = ax_cost.twinx()
    ax_mem.plot(ks, [r["peak_mib"] for r in one], "-s", color="tab:red", label="peak MiB")
    ax_mem.set_ylabel("peak resident MiB", color="tab:red")
    for ax in (ax_auroc, ax_cos, ax_cost):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("window K (pretraining steps per masker step)")
        ax.minorticks_off()
    ax_auroc.legend(fontsize=7)
    ax_cos.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--horizons", type=int, nargs="+", default=None, help="windows K")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="m to average")
    parser.add_argument("--draws", type=int, default=None, help="hypergradients per (K, mode)")
    parser.add_argument(
        "--crn-draws", type=int, default=None, help="crn hypergradients per K (default --draws)"
    )
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--backbone", default=None, help="model.backbone (default small)")
    parser.add_argument("--seed", type=int, default=0, help="the graph's (the state's) seed")
    parser.add_argument("--set", action="append", default=[], metavar="K=V", help="spec override")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny, K 1 2, m 1 2, 4 draws")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = QUICK if args.quick else {}
    args.horizons = args.horizons or list(quick.get("horizons", HORIZONS))
    args.batches = args.batches or list(quick.get("batches", BATCHES))
    args.draws = args.draws or int(quick.get("draws", DRAWS))
    args.backbone = args.backbone or str(quick.get("backbone", "small"))
    if min(args.horizons) < 1:
        parser.error(f"--horizons: expected windows K >= 1, got {args.horizons}")
    args.crn_draws = args.crn_draws or args.draws
    if args.draws < 1 or args.crn_draws < 1:
        parser.error(f"--draws, --crn-draws: expected >= 1, got {args.draws}, {args.crn_draws}")
    if min(args.batches) < 1 or max(args.batches) > args.draws:
        parser.error(f"--batches: expected 1 <= m <= --draws ({args.draws}), got {args.batches}")
    args.out = args.out or Path("results") / (
        "masker_signal-quick" if args.quick else "masker_signal"
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.memory_child:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return 0
    torch.set_num_threads(1)
    console = Console(stderr=True)
    command = shlex.join(["python", "examples/masker_signal.py", *(argv or sys.argv[1:])])
    try:  # every spec first: a bad --set stops before anything is computed
        specs = {k: spec_for(k, args.backbone, args.seed, args.set) for k in args.horizons}
    except MetamaskError as exc:
        console.print(f"masker_signal: {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    data = load_pretrain_data(specs[args.horizons[0]])
    reference = Reference(specs[args.horizons[0]], data)
    computed = 0
    count = {"independent": args.draws, "crn": args.crn_draws}  # draws per (K, mode)
    # draw-major: a run stopped early has every (K, mode) at about the same number of draws
    for draw in range(max(args.draws, args.crn_draws)):
        for mode in args.modes:
            if draw >= count[mode]:
                continue
            for window, spec in specs.items():
                path = args.out / "draws" / f"K{window}-{mode}" / f"draw{draw:03d}.pt"
                digest = spec_digest(spec)
                if load_draw(path, digest) is not None:
                    continue
                result = hypergradient(spec, data, draw, mode)
                dp = reference.change(result["grad"], result["names"])
                save_draw(path, {"digest": digest, "grad": result["grad"].bfloat16(),
                                 "change": dp, "seconds": result["seconds"]})  # fmt: skip
                computed += 1
                gc.collect()  # the cycle's graph holds reference cycles (Betty's engine)
                console.print(
                    f"K={window} {mode} draw {draw}: {result['seconds']:.1f} s, |g| "
                    f"{float(result['grad'].norm()):.3g}, "
                    f"auroc {auroc(dp.numpy(), reference.informative):.3f}",
                    highlight=False,
                )
    informative = reference.informative
    rows: list[dict[str, Any]] = []
    dropout_cosine: dict[int, float] = {}
    for window, spec in specs.items():
        digest = spec_digest(spec)
        memory = peak_memory(args, window, digest)
        computed += memory.pop("computed")
        by_mode = {}
        for mode in args.modes:
            folder = args.out / "draws" / f"K{window}-{mode}"
            records = [load_draw(folder / f"draw{j:03d}.pt", digest) for j in range(count[mode])]
            assert all(r is not None for r in records), f"{folder}: a draw is missing"
            grads = torch.stack([r["grad"].float() for r in records])  # type: ignore[index]
            changes = np.stack([r["change"].numpy() for r in records])  # type: ignore[index]
            seconds = float(np.median([r["seconds"] for r in records]))  # type: ignore[index]
            by_mode[mode] = grads
            for m in args.batches:
                row = summarize(grads, changes, m, informative)
                if row is not None:
                    rows.append({"K": window, "mode": mode, "draws": count[mode], **row,
                                 "seconds": seconds, "peak_mib": memory["peak_mib"],
                                 "before_mib": memory["before_mib"]})  # fmt: skip
        if "independent" in by_mode and "crn" in by_mode:
            pairs = zip(by_mode["independent"], by_mode["crn"], strict=False)  # the same j
            dropout_cosine[window] = float(np.mean([cosine(a, b) for a, b in pairs]))
    generator = torch.Generator().manual_seed(0)
    directions = torch.randn(RANDOM_DIRECTIONS, reference.theta.numel(), generator=generator)
    maps = np.stack([reference.change(d).numpy() for d in directions])
    control = summarize(directions, maps, 1, informative)
    table = {
        "command": command,
        "backbone": args.backbone,
        "seed": args.seed,
        "draws": count,
        "computed": computed,
        "rows": rows,
        "random_direction": control,
        "dropout_cosine": dropout_cosine,
    }
    write_json(args.out / "table.json", table)
    text = markdown(rows, control, command, args.backbone)
    write_text(args.out / "table.md", text)
    title = (f"exact (unrolled) masker hypergradient, controlled_patches, {args.backbone} "
             f"backbone, untrained, {args.draws} draws per K ({args.crn_draws} crn)")  # fmt: skip
    picture(rows, control, args.out / "signal.png", title)
    console.print(text, highlight=False, markup=False)
    console.print(f"computed {computed} new (draws + memory children)", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
