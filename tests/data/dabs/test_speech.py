"""DABS speech datasets from tiny WAV / FLAC folders in both layouts (soundfile only)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import (
    FLUENT_ROWS,
    assert_disjoint,
    assert_items,
    item_keys,
    write_audio_mnist,
    write_fluent,
    write_google_speech,
    write_librispeech,
    write_voxceleb1,
    write_wav,
)

from metamask.data import LoadOptions, load_dataset
from metamask.data.dabs.speech import FLUENT_CLASSES, GOOGLE_LABELS, librispeech_split
from metamask.data.formats.audio import AudioFiles
from metamask.errors import DataError

LAYOUTS = ["metamae", "dabs"]


def _load(name: str, root: Path) -> object:
    return load_dataset(name, LoadOptions(data_root=str(root)))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_librispeech_dev_clean_speaker_split_and_pretraining_subsets(
    tmp_path: Path, layout: str
) -> None:
    write_librispeech(tmp_path, layout)
    bundle = _load("libri-speech", tmp_path)
    assert_items(bundle, count=1)
    assert_disjoint(bundle)
    train_idx, test_idx = librispeech_split([84] * 5 + [174] * 5)
    assert len(test_idx) == 2 and len(train_idx) == 8  # int(0.8 * 5) = 4 per speaker
    assert sorted(int(y) for _, y in bundle.test) == [0, 1]
    assert len(bundle.pretrain) == 2 and bundle.pretrain.random_crop  # train-clean-100
    assert not bundle.val.base.random_crop  # validation scores the head, like test


def test_librispeech_without_training_subsets_pretrains_on_its_train_split(tmp_path: Path) -> None:
    write_librispeech(tmp_path, "metamae", with_pretrain=False)
    assert _load("libri-speech", tmp_path).pretrain is None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_audio_mnist_uses_the_official_speaker_lists(tmp_path: Path, layout: str) -> None:
    write_audio_mnist(tmp_path, layout)
    bundle = _load("audio-mnist", tmp_path)
    assert_items(bundle, count=1)
    assert_disjoint(bundle)
    assert {Path(p).parent.name for p in item_keys(bundle.val)} == {"12"}
    assert {Path(p).parent.name for p in item_keys(bundle.test)} == {"26"}
    assert [int(y) for _, y in bundle.test] == [0, 1, 2]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fluent_speech_labels_index_the_fixed_lists(tmp_path: Path, layout: str) -> None:
    write_fluent(tmp_path, layout)
    for suffix, column, k in (("act", "action", 0), ("obj", "object", 1), ("loc", "location", 2)):
        bundle = _load(f"fluent-speech-{suffix}", tmp_path)
        assert_items(bundle, count=1)
        assert_disjoint(bundle)
        expected = [FLUENT_CLASSES[column].index(row[k]) for row in FLUENT_ROWS["test"]]
        assert [int(y) for _, y in bundle.test] == expected
        assert len(bundle.val) == 1 and len(bundle.train) == 3


@pytest.mark.parametrize("layout", LAYOUTS)
def test_google_speech_training_excludes_validation_and_test_files(
    tmp_path: Path, layout: str
) -> None:
    names = write_google_speech(tmp_path, layout)
    bundle = _load("google-speech", tmp_path)
    assert_items(bundle, count=2)
    assert_disjoint(bundle)  # the official code trained on every test file
    held_out = set(names["validation_list.txt"]) | set(names["testing_list.txt"])
    train = {"/".join(Path(p).parts[-2:]) for p in item_keys(bundle.train)}
    assert train == set(names["all"]) - held_out
    labels = {int(y) for _, y in (bundle.train[i] for i in range(len(bundle.train)))}
    assert labels == {GOOGLE_LABELS.index(w) for w in ("yes", "no", "_background_noise_")}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_voxceleb1_identification_sets_are_train_val_test(tmp_path: Path, layout: str) -> None:
    write_voxceleb1(tmp_path, layout)
    bundle = _load("voxceleb1", tmp_path)
    assert_items(bundle, count=1)
    assert_disjoint(bundle)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (6, 3, 3)
    assert [int(y) for _, y in bundle.test] == [0, 1, 2]


def test_long_clips_are_cut_at_random_on_training_splits_only(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    write_wav(path, seconds=10.0, rate=16000)  # 160 000 samples > 150 526
    t = np.arange(160000) / 16000
    import soundfile

    soundfile.write(path, np.where(t < 5, 0.5 * np.sin(2 * np.pi * 300 * t), 0.0), 16000)
    from metamask.data.formats.speech_transform import SpeechNorm

    norm = SpeechNorm(0.0, 1.0)
    evaluation = AudioFiles([path], [0], norm)
    training = AudioFiles([path], [0], norm, random_crop=True)
    head = evaluation[0][0]
    assert all(torch.equal(evaluation[0][0], head) for _ in range(3))
    torch.manual_seed(0)
    crops = [training[0][0] for _ in range(12)]
    assert any(torch.equal(c, head) for c in crops) and any(not torch.equal(c, head) for c in crops)


def test_missing_or_corrupt_audio_is_named(tmp_path: Path) -> None:
    from metamask.data.formats.speech_transform import SpeechNorm

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    files = AudioFiles([tmp_path / "nope.wav", bad], [0, 0], SpeechNorm(0.0, 1.0))
    with pytest.raises(
        DataError, match=re.escape(f"audio file {tmp_path / 'nope.wav'} does not exist")
    ):
        files[0]
    with pytest.raises(DataError, match=re.escape(f"{bad}: cannot read audio")):
        files[1]
