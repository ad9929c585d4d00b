"""DABS speech: LibriSpeech (pretraining + speaker ID), AudioMNIST, Fluent Speech Commands
(location / object / action), Google Speech Commands, VoxCeleb1 speaker identification.

Audio is read with soundfile (WAV, FLAC) and turned into the (1, 224, 224) DABS log-mel image
on access (metamask.data.formats.speech_transform), with the per-dataset normalisation
constants of the official code. On training splits a clip longer than the 150 526-sample window
keeps its head or its tail at random, as in DABS; validation and test always keep the head.

Deliberate differences from the official loaders:

* google-speech: the official probe-training list subtracts validation / test file names that
  still end in a newline, so nothing is removed and every test file is trained on. Here
  train = all - validation_list - testing_list, val = validation_list, test = testing_list;
* libri-speech never downloads (the official transfer split passed ``download=True``) and reads
  the folders directly (no torchaudio, no private attributes of its dataset class); pretraining
  uses whichever of train-clean-100 / train-clean-360 / train-other-500 are present;
* official validation splits are used for model selection where they exist (AudioMNIST's
  validation speakers, Fluent Speech's valid_data.csv, Speech Commands' validation_list,
  VoxCeleb1's identification set 2), instead of being merged into probe training;
* file listings are sorted; AudioMNIST labels come from the file name with the ``.wav``
  suffix removed, not stripped character by character;
* VoxCeleb1 speaker labels come from one sorted list of all speakers in iden_split.txt.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from metamask.data.base import DataBundle, DatasetInfo, LoadOptions
from metamask.data.bundles import lazy_bundle
from metamask.data.dabs.layout import DABS_SEED, Layouts, folder_entry
from metamask.data.formats.audio import AudioFiles
from metamask.data.formats.speech_transform import N_MELS, SpeechNorm
from metamask.data.formats.text_files import read_text
from metamask.data.registry import register_dataset
from metamask.errors import DataError


def speech_info(name: str, classes: int, description: str) -> DatasetInfo:
    """The (1, 224, 224), patch 16 DatasetInfo every speech dataset shares."""
    return DatasetInfo(
        name=name,
        modality="image2d",
        input_shape=(1, N_MELS, N_MELS),
        patch=(16, 16),
        num_classes=classes,
        metric="accuracy",
        domain="speech",
        description=description,
    )


# ----------------------------------------------------------------------------------------------
# libri-speech
# ----------------------------------------------------------------------------------------------

LIBRISPEECH = speech_info(
    "libri-speech", 40, "LibriSpeech: pretrain on train-*, speaker ID on dev-clean (80/20)"
)
LIBRI_NORM = SpeechNorm(-22.924, 12.587)
LIBRI_LAYOUTS = Layouts("speech/LibriSpeech", "speech/librispeech/LibriSpeech")
LIBRI_PRETRAIN = ("train-clean-100", "train-clean-360", "train-other-500")


def librispeech_files(subset: Path) -> tuple[list[Path], list[int]]:
    """``<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` sorted by file id (as
    torchaudio orders them), with the speaker id of each."""
    files = sorted(subset.glob("*/*/*.flac"), key=lambda p: p.stem)
    speakers = []
    for path in files:
        parts = path.stem.split("-")
        if len(parts) != 3 or not parts[0].isdigit():
            raise DataError(f"{path}: expected a name <speaker>-<chapter>-<utterance>.flac")
        speakers.append(int(parts[0]))
    return files, speakers


def librispeech_split(speakers: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """DABS' per-speaker 80 / 20 split: one RandomState(42) shuffles each speaker's utterance
    indices in turn (speakers in increasing id order); the first int(0.8 n) train."""
    ids = np.asarray(speakers)
    rs = np.random.RandomState(DABS_SEED)
    train, test = [], []
    for speaker in sorted(set(speakers)):
        members = np.flatnonzero(ids == speaker)
        rs.shuffle(members)
        cut = int(0.8 * len(members))
        train += members[:cut].tolist()
        test += members[cut:].tolist()
    return np.array(train, dtype=np.int64), np.array(test, dtype=np.int64)


def _load_librispeech(options: LoadOptions) -> DataBundle:
    base = LIBRI_LAYOUTS.base(options, ("dev-clean",), "libri-speech")
    files, speakers = librispeech_files(base / "dev-clean")
    if not files:
        raise DataError(f"{base / 'dev-clean'}: no .flac files under <speaker>/<chapter>/")
    classes = sorted(set(speakers))
    if len(classes) > LIBRISPEECH.num_classes:
        raise DataError(f"{base / 'dev-clean'}: {len(classes)} speakers, expected 40")
    labels = np.array([classes.index(s) for s in speakers], dtype=np.int64)
    train_idx, test_idx = librispeech_split(speakers)
    pretrain_files: list[Path] = []
    pretrain_speakers: list[int] = []
    for subset in LIBRI_PRETRAIN:
        if (base / subset).is_dir():
            more, who = librispeech_files(base / subset)
            pretrain_files += more
            pretrain_speakers += who
    pretrain = None
    if pretrain_files:
        order = sorted(set(pretrain_speakers))
        lookup = {s: i for i, s in enumerate(order)}
        pretrain = AudioFiles(
            pretrain_files, [lookup[s] for s in pretrain_speakers], LIBRI_NORM, random_crop=True
        )
    train_files, train_labels = [files[i] for i in train_idx], labels[train_idx]
    return lazy_bundle(
        LIBRISPEECH,
        AudioFiles(train_files, train_labels, LIBRI_NORM, random_crop=True),
        train_labels,
        options,
        test=AudioFiles([files[i] for i in test_idx], labels[test_idx], LIBRI_NORM),
        pretrain=pretrain,
        eval_pool=AudioFiles(train_files, train_labels, LIBRI_NORM),
    )


register_dataset(folder_entry(LIBRISPEECH, LIBRI_LAYOUTS, ("dev-clean",), _load_librispeech))

# ----------------------------------------------------------------------------------------------
# audio-mnist: spoken digits, speaker-disjoint official lists
# ----------------------------------------------------------------------------------------------

AUDIO_MNIST = speech_info("audio-mnist", 10, "AudioMNIST: spoken digits, 60 speakers (36/12/12)")
AUDIO_MNIST_NORM = SpeechNorm(-90.293, 11.799)
AUDIO_MNIST_LAYOUTS = Layouts("speech/AudioMNIST", "speech/AudioMNIST")
AUDIO_MNIST_SPEAKERS = {
    "train": (28, 56, 7, 19, 35, 1, 6, 16, 23, 34, 46, 53, 36, 57, 9, 24, 37, 2, 8, 17, 29, 39,
              48, 54, 43, 58, 14, 25, 38, 3, 10, 20, 30, 40, 49, 55),
    "val": (12, 47, 59, 15, 27, 41, 4, 11, 21, 31, 44, 50),
    "test": (26, 52, 60, 18, 32, 42, 5, 13, 22, 33, 45, 51),
}  # fmt: skip


def audio_mnist_files(base: Path, speakers: Sequence[int], train: bool) -> AudioFiles:
    """``data/NN/<digit>_<speaker>_<index>.wav`` of the given speakers, sorted."""
    paths, labels = [], []
    for speaker in speakers:
        for path in sorted((base / "data" / f"{speaker:02d}").glob("*.wav")):
            digit = path.name.removesuffix(".wav").split("_")[0]
            if not digit.isdigit() or int(digit) > 9:
                raise DataError(f"{path}: expected a name <digit>_<speaker>_<index>.wav")
            paths.append(path)
            labels.append(int(digit))
    return AudioFiles(paths, labels, AUDIO_MNIST_NORM, random_crop=train)


def _load_audio_mnist(options: LoadOptions) -> DataBundle:
    base = AUDIO_MNIST_LAYOUTS.base(options, ("data",), "audio-mnist")
    sets = {k: audio_mnist_files(base, v, k == "train") for k, v in AUDIO_MNIST_SPEAKERS.items()}
    if not len(sets["train"]):
        raise DataError(f"{base / 'data'}: no .wav files under the training speakers' folders")
    return DataBundle(AUDIO_MNIST, sets["train"], sets["val"], sets["test"])


register_dataset(folder_entry(AUDIO_MNIST, AUDIO_MNIST_LAYOUTS, ("data",), _load_audio_mnist))

# ----------------------------------------------------------------------------------------------
# fluent-speech-{loc,obj,act}: Fluent Speech Commands, official train / valid / test CSVs
# ----------------------------------------------------------------------------------------------

FLUENT_NORM = SpeechNorm(-31.809, 13.127)
FLUENT_LAYOUTS = Layouts(
    "speech/fluent_speech_commands_dataset", "speech/fluent_speech/fluent_speech_commands_dataset"
)
FLUENT_FILES = ("data/train_data.csv", "data/valid_data.csv", "data/test_data.csv")
FLUENT_CLASSES = {
    "location": ("none", "kitchen", "bedroom", "washroom"),
    "object": ("none", "music", "lights", "volume", "heat", "lamp", "newspaper", "juice",
               "socks", "shoes", "Chinese", "Korean", "English", "German"),
    "action": ("change language", "activate", "deactivate", "increase", "decrease", "bring"),
}  # fmt: skip


def fluent_files(base: Path, csv_name: str, column: str, train: bool) -> AudioFiles:
    """One Fluent Speech CSV: wav ``path`` (relative to the dataset folder) and ``column``."""
    path = base / csv_name
    classes = FLUENT_CLASSES[column]
    paths, labels = [], []
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise DataError(f"{path}: not a CSV file ({exc})") from None
    for field in ("path", column):
        if field not in (reader.fieldnames or []):
            raise DataError(f"{path}: no column {field!r}; expected a CSV file with a header row")
    for lineno, row in enumerate(rows, start=2):
        if row[column] is None or row["path"] is None:
            raise DataError(f"{path}:{lineno}: fewer fields than the header names")
        value = row[column].strip()
        if value not in classes:
            raise DataError(f"{path}:{lineno}: {column} {value!r} is not one of {classes}")
        paths.append(base / row["path"].strip())
        labels.append(classes.index(value))
    return AudioFiles(paths, labels, FLUENT_NORM, random_crop=train)


def _fluent_loader(info: DatasetInfo, column: str) -> Callable[[LoadOptions], DataBundle]:
    def load(options: LoadOptions) -> DataBundle:
        base = FLUENT_LAYOUTS.base(options, FLUENT_FILES, info.name)
        train, val, test = (
            fluent_files(base, name, column, name == FLUENT_FILES[0]) for name in FLUENT_FILES
        )
        return DataBundle(info, train, val, test)

    return load


for _suffix, _column in (("loc", "location"), ("obj", "object"), ("act", "action")):
    _info = speech_info(
        f"fluent-speech-{_suffix}",
        len(FLUENT_CLASSES[_column]),
        f"Fluent Speech Commands: the command's {_column} (official train / valid / test)",
    )
    register_dataset(
        folder_entry(_info, FLUENT_LAYOUTS, FLUENT_FILES, _fluent_loader(_info, _column))
    )

# ----------------------------------------------------------------------------------------------
# google-speech: Speech Commands v0.02 (35 words + background noise)
# ----------------------------------------------------------------------------------------------

GOOGLE_SPEECH = speech_info(
    "google-speech", 36, "Speech Commands v0.02: 35 words + background noise, official lists"
)
GOOGLE_NORM = SpeechNorm(-46.847, 19.151)
GOOGLE_LAYOUTS = Layouts("speech/google_speech", "speech/google_speech")
GOOGLE_FILES = ("validation_list.txt", "testing_list.txt")
GOOGLE_LABELS = (
    "eight", "right", "happy", "three", "yes", "up", "no", "stop", "on", "four", "nine", "zero",
    "down", "go", "six", "two", "left", "five", "off", "seven", "one", "cat", "bird", "marvin",
    "wow", "tree", "dog", "sheila", "bed", "house", "follow", "visual", "backward", "forward",
    "learn", "_background_noise_",
)  # fmt: skip


def _google_files(base: Path, names: Sequence[str], train: bool) -> AudioFiles:
    labels = []
    for name in names:
        word = name.split("/")[0].lower()
        if word not in GOOGLE_LABELS:
            raise DataError(f"{base / name}: folder {word!r} is not one of the 36 classes")
        labels.append(GOOGLE_LABELS.index(word))
    return AudioFiles([base / n for n in names], labels, GOOGLE_NORM, random_crop=train)


def _load_google_speech(options: LoadOptions) -> DataBundle:
    base = GOOGLE_LAYOUTS.base(options, GOOGLE_FILES, "google-speech")
    listed = {
        name: [line.strip() for line in read_text(base / name).splitlines() if line.strip()]
        for name in GOOGLE_FILES
    }
    every = sorted(
        f"{entry.name}/{wav}"
        for entry in os.scandir(base)
        if entry.is_dir()
        for wav in os.listdir(entry.path)
        if wav.endswith(".wav")
    )
    held_out = set(listed["validation_list.txt"]) | set(listed["testing_list.txt"])
    train = [name for name in every if name not in held_out]
    return DataBundle(
        GOOGLE_SPEECH,
        _google_files(base, train, True),
        _google_files(base, listed["validation_list.txt"], False),
        _google_files(base, listed["testing_list.txt"], False),
    )


register_dataset(folder_entry(GOOGLE_SPEECH, GOOGLE_LAYOUTS, GOOGLE_FILES, _load_google_speech))

# ----------------------------------------------------------------------------------------------
# voxceleb1: speaker identification, iden_split.txt sets 1 / 2 / 3
# ----------------------------------------------------------------------------------------------

VOXCELEB1 = speech_info("voxceleb1", 1251, "VoxCeleb1 identification: 1251 speakers, sets 1/2/3")
VOX_NORM = SpeechNorm(-37.075, 19.776)
VOX_LAYOUTS = Layouts("speech/voxceleb1", "speech/voxceleb1")
VOX_FILES = ("iden_split.txt", "wav")


def _load_voxceleb1(options: LoadOptions) -> DataBundle:
    base = VOX_LAYOUTS.base(options, VOX_FILES, "voxceleb1")
    sets: dict[str, list[str]] = {"1": [], "2": [], "3": []}
    for lineno, line in enumerate(read_text(base / "iden_split.txt").splitlines(), start=1):
        if not line.strip():
            continue
        number, _, rel = line.strip().partition(" ")
        if number not in sets or rel.count("/") != 2:
            raise DataError(
                f"{base / 'iden_split.txt'}:{lineno}: expected '<1|2|3> <speaker>/<video>/<clip>"
                f".wav', got {line.strip()[:60]!r}"
            )
        sets[number].append(rel.strip())
    if not any(sets.values()):
        raise DataError(f"{base / 'iden_split.txt'}: empty file (expected '<1|2|3> <path>' lines)")
    speakers = sorted({rel.split("/")[0] for rels in sets.values() for rel in rels})
    if len(speakers) > VOXCELEB1.num_classes:
        raise DataError(f"{base / 'iden_split.txt'}: {len(speakers)} speakers, expected 1251")
    lookup = {s: i for i, s in enumerate(speakers)}

    def files(rels: list[str], train: bool) -> AudioFiles:
        labels = [lookup[r.split("/")[0]] for r in rels]
        return AudioFiles([base / "wav" / r for r in rels], labels, VOX_NORM, random_crop=train)

    return DataBundle(
        VOXCELEB1, files(sets["1"], True), files(sets["2"], False), files(sets["3"], False)
    )


register_dataset(folder_entry(VOXCELEB1, VOX_LAYOUTS, VOX_FILES, _load_voxceleb1))
