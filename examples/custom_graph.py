"""Your own graph with metamask's API: MAE + a learned masker + a regression head.

    python examples/custom_graph.py --steps 60

A per-token masker learns where to mask so that a regression head on the encoder's features
predicts breast_cancer's malignancy (a 0/1 score, mean squared error) on held-out data.
Nodes: `pretrain` (MAE, masks from the masker), `head` (yours: a module, a loss, a dataset)
and `mask` (the masker; its loss is the head's on the held-out data).
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

from metamask.compose import new_graph, train

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=60)
args = parser.parse_args()
torch.set_num_threads(1)

g = new_graph("breast_cancer", model={"backbone": "tiny", "mask_ratio": 0.5}, steps=args.steps)
mae, data = g.mae(), g.bundle.train
split = int(0.8 * len(data))
head_data, held_out = Subset(data, range(split)), Subset(data, range(split, len(data)))
head = nn.Linear(mae.width, 1)


def regression_loss(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    x, y = batch
    score = head(mae.features(x)).squeeze(-1)  # (B,) predicted malignancy
    return {"loss": F.mse_loss(score, y.float())}


g.node("pretrain", "pretrain", masker={"type": "token_mlp", "hidden": 32},
       hypergradient="darts", optimizer={"lr": 1e-3}, unroll_steps=2)  # fmt: skip
g.node("head", module=head, loss=regression_loss, data=head_data,
       hypergradient="darts", optimizer={"lr": 1e-2})  # fmt: skip
g.node("mask", "mask", data=held_out, optimizer={"lr": 1e-4})
g.u2l("mask", "pretrain").l2u("pretrain", "head", "mask").l2u("head", "mask")
graph = g.build()

pairs = [held_out[i] for i in range(len(held_out))]
x_out = torch.stack([x for x, _ in pairs])
y_out = torch.as_tensor([int(y) for _, y in pairs])


def held_out_mse() -> float:
    with torch.no_grad():
        return float(regression_loss((x_out, y_out))["loss"])


print(f"predicting the mean would give held-out MSE {float(y_out.float().var(False)):.3f}")
before = held_out_mse()
summary = train(graph)
print(f"{args.steps} steps, {summary.seconds_per_step:.3f} s/step")
print(f"held-out MSE of the head: {before:.3f} -> {held_out_mse():.3f}")
print(f"masker: mean masking probability {summary.final['pretrain']['masked_prob']:.3f}")
