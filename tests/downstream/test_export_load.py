"""Export -> load -> embed -> start from: every modality kind on the tiny backbone.

Image (digits), 1-D signal (basicmotions), tabular (wine: one channel, a token per feature)
and tokens (splice DNA): the exported and loaded encoder gives the run's own features bit for
bit, a run started from the export begins with the exported weights, and the timm and
facebookresearch/mae formats load and match.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import metamask
import metamask.errors
from metamask.compose import build_graph
from metamask.config import load_spec
from metamask.downstream.embed import embed
from metamask.downstream.export import export_run
from metamask.downstream.init_from import start_weights
from metamask.downstream.sources import CONFIG_NAME, WEIGHTS_NAME
from metamask.run import run_spec
from metamask.spec_data import load_pretrain_data
from tests.cli_runs import run as cli_run

PROBLEMS = Path(__file__).resolve().parents[2] / "problems"
KINDS = {"image": "digits", "signal": "basicmotions", "tabular": "wine", "tokens": "splice"}
TINY = ["model.backbone=tiny", "train.threads=1", "train.steps=2", "eval.enabled=false"]


def _spec(dataset: str, method: str = "mae", extra: tuple[str, ...] = ()):
    return load_spec(PROBLEMS / f"{method}-{dataset}.yaml", [*TINY, *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, object]]:
    """kind -> (run folder, export folder, the run's own auto-encoder)."""
    out = {}
    for kind, dataset in KINDS.items():
        folder = tmp_path_factory.mktemp(kind) / "run"
        result = run_spec(_spec(dataset), folder, progress=False)
        export = folder.parent / "export"
        export_run(folder, export, with_decoder=kind == "signal")
        out[kind] = (folder, export, result.graph.mae)
    return out


def _batch(dataset: str) -> torch.Tensor:
    bundle = load_pretrain_data(_spec(dataset))
    return torch.stack([bundle.test[i][0] for i in range(min(8, len(bundle.test)))])


@pytest.mark.parametrize("kind", list(KINDS))
def test_export_then_load_gives_the_runs_features_bit_for_bit(kind: str, runs: dict) -> None:
    folder, export, mae = runs[kind]
    assert sorted(p.name for p in export.iterdir()) == ["MODEL.md", CONFIG_NAME, WEIGHTS_NAME]
    x = _batch(KINDS[kind])
    mae.eval()
    with torch.no_grad():
        pool = "tokens" if mae.info.metric == "token_accuracy" else "global"
        own, own_tokens = mae.features(x, pool=pool), mae.features(x, pool="tokens")
        for path in (export, folder):  # an export, and the run folder itself
            encoder = metamask.load_encoder(path)
            assert isinstance(encoder, torch.nn.Module) and not encoder.training
            assert torch.equal(encoder.features(x), own)
            assert torch.equal(encoder.tokens(x), own_tokens)
    config = json.loads((export / CONFIG_NAME).read_text())
    assert config["modality"] == mae.info.modality and config["step"] == 2
    assert config["encoder"]["width"] == 32 and config["metamask_version"] == metamask.__version__
    assert len(config["spec_sha256"]) == 64
    from safetensors.torch import load_file

    keys = set(load_file(export / WEIGHTS_NAME))
    assert "encoder.pos_embed" in keys and "encoder.blocks.0.attn.qkv.weight" in keys
    assert any(k.startswith("decoder.") for k in keys) == (kind == "signal")  # --with-decoder
    assert not any("optimizer" in k or "masker" in k for k in keys)
    assert "## Evaluation" in (export / "MODEL.md").read_text()


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_run_started_from_an_export_has_its_encoder_weights(kind: str, runs: dict) -> None:
    _, export, mae = runs[kind]
    spec = _spec(KINDS[kind], extra=(f"model.init_from={export}",))
    graph = build_graph(spec, load_pretrain_data(spec), torch.device("cpu"))
    record = start_weights(graph.mae, spec, None, resuming=False)
    assert record is not None and record["missing"] == [] and record["unexpected"] == []
    started, own = graph.mae.state_dict(), mae.state_dict()
    for key, value in own.items():
        if key.startswith(("tokenizer.", "encoder.")) or kind == "signal":
            assert torch.equal(started[key], value), key


@pytest.mark.parametrize("method", ["metamae", "mae+mask", "metamae+mask"])
def test_every_method_starts_from_an_export(method: str, runs: dict) -> None:
    _, export, mae = runs["image"]
    spec = _spec("digits", method, (f"model.init_from={export}",))
    graph = build_graph(spec, load_pretrain_data(spec), torch.device("cpu"))
    start_weights(graph.mae, spec, None, resuming=False)
    key = "encoder.blocks.1.mlp.fc2.weight"
    assert torch.equal(graph.mae.state_dict()[key], mae.state_dict()[key])


def test_the_timm_export_loads_strict_and_gives_the_same_features(
    runs: dict, tmp_path: Path
) -> None:
    timm = pytest.importorskip("timm")
    from safetensors.torch import load_file

    folder, _, _ = runs["image"]
    out = tmp_path / "timm"
    export_run(folder, out, fmt="timm")
    config = json.loads((out / CONFIG_NAME).read_text())["timm"]
    model = timm.create_model(config["model_name"], **config["kwargs"])
    model.load_state_dict(load_file(out / config["weights"]), strict=True)
    model.eval()
    x = _batch("digits")
    with torch.no_grad():
        theirs, ours = model(x), metamask.load_encoder(out).features(x)
    assert theirs.shape == ours.shape
    assert torch.allclose(theirs, ours, atol=1e-5, rtol=0)
    assert "timm.create_model" in (out / "MODEL.md").read_text()


def test_timm_format_is_refused_for_other_modalities(runs: dict, tmp_path: Path) -> None:
    folder, _, _ = runs["signal"]
    proc = cli_run("export", str(folder), "--out", str(tmp_path / "t"), "--format", "timm")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "images only" in proc.stderr and not (tmp_path / "t").exists()


def _mae_state_dict(mae: torch.nn.Module, qkv_bias: bool) -> dict[str, torch.Tensor]:
    """A facebookresearch/mae MaskedAutoencoderViT state dict: its key names and shapes
    (qkv biases, the fixed pos_embed with its CLS row, a decoder), random values."""
    generator = torch.Generator().manual_seed(0)
    own = mae.state_dict()
    names = {
        "tokenizer.proj.": "patch_embed.proj.",
        "encoder.blocks.": "blocks.",
        "encoder.norm.": "norm.",
        "encoder.cls_token": "cls_token",
    }
    out = {}
    for key, value in own.items():
        for ours, theirs in names.items():
            if key.startswith(ours):
                out[theirs + key[len(ours) :]] = torch.randn(value.shape, generator=generator)
        if qkv_bias and key.endswith("attn.qkv.weight") and key.startswith("encoder."):
            name = "blocks." + key[len("encoder.blocks.") : -len("weight")] + "bias"
            out[name] = torch.randn(value.shape[0], generator=generator)
    width, side = mae.width, mae.tokenizer.grid[0]
    out["pos_embed"] = _mae_positions(width, side)
    out["mask_token"] = torch.zeros(1, 1, 16)
    out["decoder_embed.weight"] = torch.zeros(16, width)
    out["decoder_pred.weight"] = torch.zeros(48, 16)
    return out


def _mae_positions(width: int, side: int) -> torch.Tensor:
    """facebookresearch/mae's fixed table (util/pos_embed.py), from its formula: a zero CLS
    row, then per patch (row-major) the 1-D sin-cos of its column in the first half of the
    width and of its row in the second (the grid comes from meshgrid(w, h), w first)."""
    omega = 1.0 / 10000 ** (np.arange(width // 4) / (width / 4))

    def one_d(pos: np.ndarray) -> np.ndarray:
        angles = np.outer(pos, omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    cols, rows = np.meshgrid(np.arange(side), np.arange(side))  # w first
    table = np.concatenate([one_d(cols.reshape(-1)), one_d(rows.reshape(-1))], axis=1)
    table = np.concatenate([np.zeros((1, width)), table])
    return torch.from_numpy(table).float()[None]


def test_a_facebookresearch_mae_state_dict_starts_a_run(runs: dict, tmp_path: Path) -> None:
    _, _, mae = runs["image"]
    path = tmp_path / "mae_pretrain_vit_tiny.pth"
    state = _mae_state_dict(mae, qkv_bias=True)
    torch.save({"model": state}, path)  # as the published checkpoints wrap it
    extra = (f"model.init_from={path}", "model.encoder.qkv_bias=true")
    spec = _spec("digits", "metamae", extra)
    graph = build_graph(spec, load_pretrain_data(spec), torch.device("cpu"))
    record = start_weights(graph.mae, spec, None, resuming=False)
    assert record is not None and record["kind"] == "timm / facebookresearch/mae ViT"
    assert {"pos_embed", "mask_token", "decoder_embed.weight"} <= set(record["not_loaded"])
    assert "row and column halves swapped" in record["positions"]  # what the docs say
    loaded = graph.mae.state_dict()
    assert torch.equal(loaded["tokenizer.proj.weight"], state["patch_embed.proj.weight"])
    assert torch.equal(loaded["encoder.blocks.1.attn.qkv.bias"], state["blocks.1.attn.qkv.bias"])
    assert torch.equal(loaded["encoder.norm.weight"], state["norm.weight"])
    assert torch.equal(loaded["encoder.cls_token"], state["cls_token"])

    # without qkv biases in the model, strict loading refuses in one line, through the CLI
    out = tmp_path / "refused"
    proc = cli_run(
        "run", str(PROBLEMS / "mae-digits.yaml"), *[a for t in TINY for a in ("--set", t)],
        "--set", f"model.init_from={path}", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "unexpected: blocks.0.attn.qkv.bias" not in proc.stderr  # named in metamask's keys
    assert "unexpected: encoder.blocks.0.attn.qkv.bias" in proc.stderr
    assert "init_strict: false" in proc.stderr and not out.exists()


@pytest.mark.slow
def test_a_missing_init_from_is_refused_before_anything_is_loaded(tmp_path: Path) -> None:
    out = tmp_path / "run"
    sets = [*TINY, f"model.init_from={tmp_path / 'nowhere.pth'}"]
    args = [a for t in sets for a in ("--set", t)]
    proc = cli_run("run", str(PROBLEMS / "mae-wine.yaml"), *args, "--out", str(out))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "model.init_from" in proc.stderr and "no such file or folder" in proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_init_strict_false_loads_what_fits_and_results_record_it(
    runs: dict, tmp_path: Path
) -> None:
    _, _, mae = runs["image"]
    path = tmp_path / "vit.pth"
    torch.save(_mae_state_dict(mae, qkv_bias=True), path)
    out = tmp_path / "run"
    sets = [*TINY, f"model.init_from={path}", "model.init_strict=false", "train.log_every=1"]
    args = [a for t in sets for a in ("--set", t)]
    proc = cli_run("run", str(PROBLEMS / "mae-digits.yaml"), *args, "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "results.json").read_text())["init_from"]
    assert record["path"] == str(path) and not record["strict"]
    assert record["unexpected"][0] == "encoder.blocks.0.attn.qkv.bias" and record["loaded"] > 0
    assert json.loads((out / "init_from.json").read_text()) == record
    # a resume loads nothing again (the file may be gone) and keeps the record
    path.unlink()
    proc = cli_run("run", "--resume", str(out), "--set", "train.steps=3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "results.json").read_text())["init_from"] == record


def test_embed_writes_features_and_labels_row_for_row(runs: dict, tmp_path: Path) -> None:
    folder, export, mae = runs["signal"]
    out = tmp_path / "feats.npy"
    proc = cli_run("embed", str(export), "--data", "basicmotions", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    index = json.loads((tmp_path / "feats.json").read_text())
    feats, labels = np.load(out), np.load(tmp_path / "feats.labels.npy")
    bundle = load_pretrain_data(_spec("basicmotions"))
    sizes = [len(bundle.train), len(bundle.val), len(bundle.test)]
    assert feats.shape == (sum(sizes), 32) and labels.shape == (sum(sizes),)
    assert index["splits"] == {
        "train": [0, sizes[0]],
        "val": [sizes[0], sizes[0] + sizes[1]],
        "test": [sizes[0] + sizes[1], sum(sizes)],
    }
    start = index["splits"]["test"][0]
    test_y = np.array([int(bundle.test[i][1]) for i in range(len(bundle.test))])
    assert np.array_equal(labels[start:], test_y)
    x = torch.stack([bundle.test[i][0] for i in range(3)])
    mae.eval()
    with torch.no_grad():
        assert np.array_equal(feats[start : start + 3], mae.features(x).numpy())

    arrays = tmp_path / "mine.npz"
    np.savez(arrays, x=x.numpy().reshape(3, -1), y=np.array([7, 8, 9]))  # flat rows: reshaped
    out2 = tmp_path / "mine_feats.npy"
    embed(folder, out2, arrays=arrays, progress=False)  # the run folder: the same encoder
    assert np.array_equal(np.load(out2), feats[start : start + 3])
    assert np.load(tmp_path / "mine_feats.labels.npy").tolist() == [7, 8, 9]


def _broken(export: Path, tmp_path: Path, how: str) -> Path:
    bad = tmp_path / how
    bad.mkdir()
    for name in ("config.json", WEIGHTS_NAME, "MODEL.md"):
        (bad / name).write_bytes((export / name).read_bytes())
    weights = bad / WEIGHTS_NAME
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "random":
        weights.write_bytes(np.random.default_rng(0).bytes(4096))
    else:  # the config says another width than the weights have
        config = json.loads((bad / "config.json").read_text())
        config["encoder"]["width"] = 64
        (bad / "config.json").write_text(json.dumps(config))
    return bad


@pytest.mark.parametrize(
    "how",
    [
        "truncated",
        pytest.param("random", marks=pytest.mark.slow),
        pytest.param("shape", marks=pytest.mark.slow),
    ],
)
def test_bad_export_files_give_one_line_and_exit_2(how: str, runs: dict, tmp_path: Path) -> None:
    _, export, _ = runs["signal"]
    bad = _broken(export, tmp_path, how)
    before = {p.name: p.read_bytes() for p in bad.iterdir()}
    out = tmp_path / "out" / "feats.npy"
    proc = cli_run("embed", str(bad), "--data", "basicmotions", "--out", str(out), "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0], proc.stderr
    assert ("do not fit the config" in lines[0]) == (how == "shape")
    assert not (tmp_path / "out").exists()  # nothing written
    assert {p.name: p.read_bytes() for p in bad.iterdir()} == before  # nothing changed
    # the same file as start weights: refused before the run folder is made
    run_out = tmp_path / "run"
    sets = [*TINY, f"model.init_from={bad}"]
    args = [a for t in sets for a in ("--set", t)]
    proc = cli_run("run", str(PROBLEMS / "mae-basicmotions.yaml"), *args, "--out", str(run_out))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not run_out.exists()


@pytest.mark.slow  # a real subprocess run; the default run stays short
def test_export_is_atomic_and_leaves_the_run_folder_unchanged(runs: dict, tmp_path: Path) -> None:
    folder, _, _ = runs["tabular"]
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = tmp_path / "e"
    out.mkdir()
    (out / "x").write_text("taken")
    proc = cli_run("export", str(folder), "--out", str(out))
    assert proc.returncode == 2 and "already exists" in proc.stderr
    proc = cli_run("export", str(tmp_path / "nothing"), "--out", str(tmp_path / "f"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]  # no temporary folder left


def test_load_encoder_imports_no_betty_torchopt_or_training_stack(runs: dict) -> None:
    _, export, _ = runs["tokens"]
    code = f"""
import sys, torch, metamask
encoder = metamask.load_encoder({str(export)!r}, dtype=torch.float64)
assert encoder.dtype == torch.float64
encoder.features(torch.zeros(2, 60, dtype=torch.long))
heavy = ("betty", "torchopt", "metamask.nodes", "metamask.hypergrad", "metamask.compose",
         "metamask.graph", "metamask.train", "metamask.run", "metamask.downstream.probe")
print(sorted(m for m in sys.modules if m.startswith(heavy)))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_float64_run_exports_and_loads_in_float64(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    spec = _spec("wine", extra=("train.dtype=float64",))
    result = run_spec(spec, folder, progress=False)
    export_run(folder, tmp_path / "e")
    encoder = metamask.load_encoder(tmp_path / "e")
    assert encoder.dtype == torch.float64
    x = torch.randn(4, 1, 13, dtype=torch.float64)
    result.graph.mae.eval()
    with torch.no_grad():
        assert torch.equal(encoder.features(x), result.graph.mae.features(x))
    assert dataclasses.is_dataclass(encoder.config)


def test_embed_reads_a_csv_with_a_label_column_and_refuses_a_wrong_width(
    runs: dict, tmp_path: Path
) -> None:
    _, export, mae = runs["tabular"]
    rows = np.random.default_rng(1).normal(size=(5, 13))
    header = ",".join([*(f"f{i}" for i in range(13)), "label"])
    lines = [",".join([*(f"{v:.6f}" for v in r), str(i % 3)]) for i, r in enumerate(rows)]
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("\n".join([header, *lines]) + "\n")
    index = embed(export, tmp_path / "f.npy", arrays=csv_path, progress=False)
    assert index["shape"] == [5, 32] and index["splits"] == {"arrays": [0, 5]}
    assert np.load(tmp_path / "f.labels.npy").tolist() == [0, 1, 2, 0, 1]
    x = torch.tensor(np.round(rows, 6), dtype=torch.float32).reshape(5, 1, 13)
    mae.eval()
    with torch.no_grad():
        assert np.array_equal(np.load(tmp_path / "f.npy"), mae.features(x).numpy())
    wide = tmp_path / "wide.npz"
    np.savez(wide, x=np.zeros((2, 14)))
    with pytest.raises(metamask.errors.DataError, match=r"14 values.*\(1, 13\)"):
        embed(export, tmp_path / "g.npy", arrays=wide, progress=False)
    assert not (tmp_path / "g.npy").exists()
