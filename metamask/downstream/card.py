"""The model card of an export (``MODEL.md``): what the encoder was trained on and how it scored.

Written from the run's spec and its ``results.json`` only: the data, the method (the graph's
node types), the steps, the encoder's shape, the evaluation scores, and how to load it.
"""

from __future__ import annotations

from typing import Any

from metamask.config import RunSpec
from metamask.downstream.encoder import EncoderConfig


def model_card(
    config: EncoderConfig,
    spec: RunSpec | None,
    results: dict[str, Any] | None,
    timm_call: str | None = None,
    folder: str = ".",
) -> str:
    """MODEL.md's text (``folder``: the export's path as the user will name it)."""
    enc = config.encoder
    name = spec.name if spec is not None else config.dataset
    lines = [f"# {name}: a metamask encoder", ""]
    if spec is not None and spec.description:
        lines += [spec.description.strip(), ""]
    shape = "x".join(str(v) for v in config.input_shape)
    lines += [
        "## What it is",
        "",
        f"- data: `{config.dataset}` ({config.modality}, inputs {shape}, patch "
        f"{list(config.patch)}{f', vocabulary {config.vocab_size}' if config.vocab_size else ''})",
    ]
    if spec is not None:
        nodes = ", ".join(f"`{n}` ({node.type})" for n, node in spec.graph.nodes.items())
        lines += [
            f"- method: the graph of `{spec.name}`: {nodes}; mask ratio {spec.model.mask_ratio}",
            f"- seed {spec.seed}, batch size {spec.data.batch_size}",
        ]
    lines += [
        f"- steps: {config.step}",
        f"- encoder: width {enc['width']}, depth {enc['depth']}, heads {enc['heads']}, "
        f"MLP ratio {enc['mlp_ratio']}, dtype {config.dtype}",
        f"- features: `{config.pool}` pool (as the linear probe reads them)",
        f"- metamask {config.metamask_version}; resolved spec sha256 `{config.spec_sha256}`",
        "",
        "## Evaluation (from the run's results.json)",
        "",
    ]
    lines += _scores(results)
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import metamask",
        f"encoder = metamask.load_encoder({folder!r})",
        "features = encoder.features(x)  # x: a batch of inputs of the shape above",
        "```",
    ]
    if timm_call is not None:
        lines += ["", "With timm (`timm_model.safetensors`):", "", "```python", timm_call, "```"]
    return "\n".join(lines) + "\n"


def _scores(results: dict[str, Any] | None) -> list[str]:
    if not results or (results.get("test") is None and not results.get("finetune")):
        return ["No evaluation was recorded (the run stopped before it, or `eval.enabled` off)."]
    out = []
    if results.get("test") is not None:
        out.append(
            f"- linear probe on `{results.get('eval_dataset') or results.get('dataset')}`: "
            f"test {results.get('metric')} {results['test']:.4f} (validation "
            f"{results.get('val', float('nan')):.4f}, epoch {results.get('probe_epoch')} chosen "
            "on validation)"
        )
    finetune = results.get("finetune")
    if isinstance(finetune, dict) and finetune.get("test") is not None:
        out.append(
            f"- fine-tuning: test {finetune.get('metric')} {finetune['test']:.4f} (epoch "
            f"{finetune.get('epoch')} chosen on validation)"
        )
    return out
