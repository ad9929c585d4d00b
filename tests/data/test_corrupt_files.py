"""Every file a DABS loader reads, emptied, truncated, replaced by random bytes or by a file of
the wrong shape: the load fails with one DataError line naming the file, never a traceback (a
truncated list or recording that still reads as a shorter one may also load).

The folders are the tiny real-format ones of ``tests/fixtures_data.py`` (DABS layout); one file
of each kind a loader reads is spoiled at a time, then the dataset is loaded and every item of
every split decoded (images, audio and CSV rows are read lazily, on access).
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable
from pathlib import Path

import fixtures_data as fx
import pytest

from metamask.data import LoadOptions, get_dataset, load_dataset
from metamask.errors import DataError

# dataset -> (fixture writer, files it reads: paths or globs under the data root, first match)
READS: dict[str, tuple[Callable[..., object], tuple[str, ...]]] = {
    "higgs": (fx.write_higgs, ("particle_physics/higgsPretrain.csv", "*/higgsTransfer.csv")),
    "genomics-ood": (fx.write_genomics, ("genomics/genomicsTransferOOD.csv",)),
    "pfam": (fx.write_pfam, ("proteins/pfam_pretrain_train.csv", "proteins/pfam_transfer.csv")),
    "stability": (fx.write_tape, ("proteins/stability_train.csv", "proteins/stability_valid.csv")),
    "pamap2": (fx.write_pamap2, ("sensor/pamap2/PAMAP2_Dataset/Protocol/subject101.dat",)),
    "cifar10": (fx.write_cifar10, ("**/data_batch_1", "**/test_batch")),
    "cub": (fx.write_cub, ("**/images.txt", "**/image_class_labels.txt", "**/*.jpg")),
    "vggflower": (fx.write_vggflower, ("**/imagelabels.mat", "**/*.jpg")),
    "dtd": (fx.write_dtd, ("**/labels/train1.txt", "**/*.jpg")),
    "traffic-sign": (fx.write_traffic_sign, ("**/*.ppm",)),
    "aircraft": (fx.write_aircraft, ("**/images_variant_trainval.txt", "**/images_box.txt")),
    "imagenet32": (fx.write_imagenet, ("**/*.JPEG",)),
    "eurosat": (fx.write_eurosat, ("satellite_images/pretrain.pkl",)),
    "wafer-map": (fx.write_wafer_map, ("semiconductors/labeled.pkl",)),
    "libri-speech": (fx.write_librispeech, ("**/*.flac",)),
    "audio-mnist": (fx.write_audio_mnist, ("**/*.wav",)),
    "fluent-speech-act": (fx.write_fluent, ("**/train_data.csv", "**/*.wav")),
    "google-speech": (fx.write_google_speech, ("**/testing_list.txt", "**/no/*.wav")),
    "voxceleb1": (fx.write_voxceleb1, ("**/iden_split.txt", "**/*.wav")),
}
TEXT = (".csv", ".txt", ".dat")
MODES = ("empty", "truncated", "random", "wrong_shape")
CASES = [(name, pattern) for name, (_, patterns) in READS.items() for pattern in patterns]


def _spoil(path: Path, mode: str) -> None:
    data = path.read_bytes()
    if mode == "empty":
        path.write_bytes(b"")
    elif mode == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif mode == "random":
        path.write_bytes(random.Random(path.name).randbytes(4096))
    elif path.suffix in TEXT:  # a well-formed file of the wrong layout
        path.write_text("a,b\n1,2\n")
    else:  # a readable pickle of the wrong thing (CIFAR batches, DABS pickles)
        path.write_bytes(pickle.dumps({"a": [1, 2, 3]}))


def _decode_everything(name: str, root: Path) -> None:
    bundle = load_dataset(name, LoadOptions(data_root=str(root)))
    splits = [bundle.train, bundle.val, bundle.test]
    if bundle.pretrain is not None:
        splits.append(bundle.pretrain)
    for split in splits:
        for i in range(len(split)):  # type: ignore[arg-type]
            split[i]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "pattern"), CASES)
def test_a_spoiled_file_fails_in_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, pattern: str, mode: str
) -> None:
    binary_media = not pattern.endswith((*TEXT, "1", "batch", ".pkl"))
    if mode == "wrong_shape" and (binary_media or pattern.endswith(".mat")):
        pytest.skip("an image or recording of another size is valid input (it is resized)")
    monkeypatch.setenv("METAMASK_CACHE_DIR", str(tmp_path / "cache"))
    writer, _ = READS[name]
    root = tmp_path / "root"
    writer(root, "dabs")
    path = sorted(root.glob(pattern))[0]
    _spoil(path, mode)
    try:
        _decode_everything(name, root)
    except DataError as exc:
        message = str(exc)
    else:  # cut at a line or frame boundary: a shorter list, a shorter recording
        assert mode == "truncated", f"{path} ({mode}) was read without an error"
        return
    assert "\n" not in message
    if mode in ("empty", "random") or path.suffix != ".txt":
        assert str(path) in message, message
    else:  # a cut or re-shaped list file may name the image or clip it lists no longer
        assert str(root) in message, message


@pytest.mark.parametrize("name", ["higgs", "pamap2", "eurosat", "cub"])
def test_the_availability_check_reads_enough_to_call_random_bytes_unreadable(
    tmp_path: Path, name: str
) -> None:
    writer, patterns = READS[name]
    writer(tmp_path, "dabs")
    options = LoadOptions(data_root=str(tmp_path))
    assert get_dataset(name).requires(options) is None
    path = sorted(tmp_path.glob(patterns[0]))[0]
    _spoil(path, "random")
    reason = get_dataset(name).requires(options) or ""
    assert reason.startswith(f"present but unreadable: {path}: "), reason


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_a_spoiled_file_of_your_own_arrays_fails_in_one_line_naming_it(
    tmp_path: Path, suffix: str, mode: str
) -> None:
    import numpy as np

    from metamask.data.user_arrays import ArraySource, load_array_dataset

    x = np.random.default_rng(0).normal(size=(40, 3, 16))
    y = np.arange(40) % 2
    path = tmp_path / f"mine{suffix}"
    if suffix == ".npz":
        np.savez(path, x=x, y=y)
    else:
        header = ",".join([f"f{i}" for i in range(48)] + ["label"])
        rows = [",".join(map(str, [*x[i].reshape(-1), y[i]])) for i in range(40)]
        path.write_text("\n".join([header, *rows]) + "\n")
    if mode == "wrong_shape" and suffix == ".npz":
        np.savez(path, x=x[:, :, :5], y=y)  # (3, 5) examples for a (3, 16) input
    else:
        _spoil(path, mode)
    source = ArraySource(
        path=str(path), modality="signal1d", input_shape=(3, 16), patch=(4,), num_classes=2
    )
    with pytest.raises(DataError) as caught:
        load_array_dataset("mine", source, LoadOptions())
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("mode", ["empty", "truncated", "random"])
def test_a_spoiled_cache_entry_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    import numpy as np

    from metamask.data.cache import cached_array, cached_arrays

    monkeypatch.setenv("METAMASK_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "source.csv"
    source.write_text("a\n1\n")
    values = np.arange(500.0)
    one = lambda: cached_array("one", [source], lambda: values, mmap=True)  # noqa: E731
    several = lambda: cached_arrays("several", [source], lambda: {"v": values})  # noqa: E731
    one(), several()
    entries = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(entries) == 2
    for entry in entries:
        _spoil(entry, mode)
    assert np.array_equal(one(), values)
    assert np.array_equal(several()["v"], values)
    assert np.array_equal(several()["v"], values)  # the rebuilt entry was stored again
