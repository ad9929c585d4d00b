"""Every embedded dataset loads offline, has its declared shape, and splits deterministically."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_data import assert_items

from metamask.data import LoadOptions, all_datasets, load_dataset
from metamask.data.base import NO_LABEL, ArrayDataset
from metamask.data.bundles import TEST_FRACTION, split_indices

EMBEDDED = sorted(n for n, e in all_datasets().items() if e.source == "embedded")
EXPECTED = {  # name: (input shape, classes, metric, labelled)
    "basicmotions": ((6, 100), 4, "accuracy", True),
    "breast_cancer": ((1, 30), 2, "binary_accuracy", True),
    "controlled_patches": ((3, 32, 32), 4, "accuracy", True),
    "controlled_signal": ((2, 128), 4, "accuracy", True),
    "digits": ((3, 32, 32), 10, "accuracy", True),
    "espeak_digits": ((1, 224, 224), 10, "accuracy", True),
    "janggu_dna": ((200,), 2, "binary_accuracy", True),
    "japanese_vowels": ((12, 32), 9, "accuracy", True),
    "mnist1d": ((1, 40), 10, "accuracy", True),
    "mnist1d_large": ((1, 40), 10, "accuracy", True),
    "proteins": ((128,), 0, "accuracy", False),
    "satimage": ((4, 3, 3), 6, "accuracy", True),
    "shuttle": ((1, 9), 2, "binary_accuracy", True),
    "splice": ((60,), 3, "accuracy", True),
    "synthetic_wafers": ((3, 32, 32), 9, "weighted_f1", True),
    "wine": ((1, 13), 3, "accuracy", True),
}


@pytest.fixture(scope="module")
def bundles() -> dict[str, object]:
    return {name: load_dataset(name) for name in EMBEDDED}


def test_every_embedded_dataset_is_registered_with_its_declared_facts() -> None:
    assert sorted(EXPECTED) == EMBEDDED
    for name, (shape, classes, metric, labelled) in EXPECTED.items():
        info = all_datasets()[name].info
        assert (info.input_shape, info.num_classes, info.metric, info.labelled) == (
            shape,
            classes,
            metric,
            labelled,
        )
        assert all_datasets()[name].requires(LoadOptions()) is None  # available here


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_embedded_dataset_items_have_the_declared_shape_dtype_and_labels(
    name: str, bundles: dict[str, object]
) -> None:
    assert_items(bundles[name])


def test_embedded_labelled_splits_cover_every_class(bundles: dict[str, object]) -> None:
    for name, bundle in bundles.items():
        info = bundle.info  # type: ignore[attr-defined]
        if not info.labelled or not isinstance(bundle.train, ArrayDataset):  # type: ignore[attr-defined]
            continue
        for split in ("train", "test"):
            labels = getattr(bundle, split).y
            assert set(labels.tolist()) == set(range(info.num_classes)), (name, split)


def test_splits_are_deterministic_per_seed_and_change_with_it() -> None:
    a = load_dataset("wine", LoadOptions(seed=3))
    b = load_dataset("wine", LoadOptions(seed=3))
    c = load_dataset("wine", LoadOptions(seed=4))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.test.y, c.test.y) or not torch.equal(a.test.x, c.test.x)


def test_split_indices_are_disjoint_stratified_and_cover_everything() -> None:
    labels = np.repeat(np.arange(3), [50, 30, 20])
    rest, held = split_indices(labels, TEST_FRACTION, seed=0)
    assert not set(rest) & set(held) and len(rest) + len(held) == 100
    assert np.bincount(labels[held]).tolist() == [10, 6, 4]
    assert np.array_equal(held, np.sort(held))


def test_japanese_vowels_is_zero_padded_after_standardisation() -> None:
    bundle = load_dataset("japanese_vowels")
    x = bundle.test.x  # raw lengths 7..29 frames, padded to 32
    assert (x[:, :, 29:] == 0).all()  # no utterance reaches frame 30
    assert not torch.isnan(x).any()
    lengths = (x.abs().sum(dim=1) > 0).sum(dim=1)
    assert lengths.min() >= 7 and lengths.max() <= 29


def test_satimage_keeps_the_four_bands_of_each_pixel_together() -> None:
    from metamask.data.embedded.keel import satimage_arrays

    x, y = satimage_arrays()
    # first row of satimage.dat: 92 115 120 94 | 84 102 106 79 | ... (pixel-major, 4 bands)
    assert x[0, :, 0, 0].tolist() == [92, 115, 120, 94]
    assert x[0, :, 0, 1].tolist() == [84, 102, 106, 79]
    assert np.bincount(y).tolist() == [1533, 703, 1358, 626, 707, 1508]


def test_splice_maps_every_ambiguity_code_to_the_n_token() -> None:
    from metamask.data.embedded.keel import splice_arrays
    from metamask.data.formats.vocab import DNA_AMBIGUOUS, DNA_AMBIGUOUS_TABLE, encode

    x, y = splice_arrays()
    assert x.shape == (3190, 60) and np.bincount(y).tolist() == [767, 768, 1655]
    n_token = DNA_AMBIGUOUS.index("N")
    assert 0 < (x == n_token).any(axis=1).sum() <= 15  # the 15 rows with N/D/R/S
    assert encode("ACGTNDRS", DNA_AMBIGUOUS_TABLE, "t").tolist() == [0, 1, 2, 3, 4, 4, 4, 4]


def test_janggu_task_is_which_file_with_held_out_test_files() -> None:
    bundle = load_dataset("janggu_dna")
    assert len(bundle.test) == 200 and bundle.test.y.tolist().count(1) == 100
    assert len(bundle.train) + len(bundle.val) == 3897 + 3900


def test_proteins_drop_the_stop_symbol_and_pad_with_x() -> None:
    from metamask.data.embedded.sequences import proteome_tokens

    tokens = proteome_tokens()
    assert tokens.shape == (2100, 128)
    bundle = load_dataset("proteins")
    assert (bundle.train.y == NO_LABEL).all()
    short = np.flatnonzero((tokens == 0).any(axis=1))
    assert len(short) > 0  # some proteins are shorter than 128 and end in X padding
    row = tokens[short[0]]
    first_pad = int(np.argmax(row == 0))
    assert (row[first_pad:] == 0).all()


def test_espeak_digits_are_reproducible_and_their_normalisation_is_measured() -> None:
    from metamask.data.embedded.speech import NORM, digit_clips
    from metamask.data.formats.speech_transform import dabs_log_mel, fix_length

    clips, labels, is_test, rate = digit_clips()
    again, _, _, _ = digit_clips()
    assert rate == 22050 and len(clips) == 480 and is_test.sum() == 120
    assert all(np.array_equal(a, b) for a, b in zip(clips, again, strict=True))
    assert np.bincount(labels).tolist() == [48] * 10
    specs = np.stack([dabs_log_mel(fix_length(c / 32768.0), rate) for c in clips])
    assert abs(specs.mean() - NORM.mean) < 0.01 and abs(specs.std() - NORM.std) < 0.01


def test_espeak_digits_test_voices_are_held_out() -> None:
    bundle = load_dataset("espeak_digits")
    train_ids = set(bundle.train.indices) | set(bundle.val.indices)
    assert not train_ids & set(bundle.test.indices)
    assert len(train_ids) == 360 and len(bundle.test) == 120


def test_synthetic_wafers_use_the_wm811k_grey_levels() -> None:
    from metamask.data.formats.wafer_maps import WAFER_CLASSES, encode_states, synthetic_wafer

    rng = np.random.default_rng(0)
    for kind in WAFER_CLASSES:
        states = synthetic_wafer(kind, rng)
        assert set(np.unique(states)) <= {0, 1, 2}
        assert states[0, 0] == 0 and states[states.shape[0] // 2, states.shape[1] // 2] > 0
        assert set(np.unique(encode_states(states))) <= {0, 127, 255}
    full = synthetic_wafer("near-full", rng)
    none = synthetic_wafer("none", rng)
    assert (full == 2).mean() > 5 * (none == 2).mean()
    with pytest.raises(ValueError, match="unknown wafer failure type"):
        synthetic_wafer("cracked", rng)
