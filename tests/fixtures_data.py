"""Tiny DABS folders in both real layouts, written by tests (a few rows, images, wavs, pickles).

Every writer takes the data root and a layout, ``"metamae"`` or ``"dabs"`` (the two folder
conventions of DATA.md B.1), writes the files the loader needs and returns facts the tests
check (row counts, labels). The pandas pickles are real ones: DataFrames written by pandas
1.2.5, 1.5.3, 2.2.3 and 3.0.0 (constant image arrays, so they compress to a few KB), stored
here zlib + base64 encoded, so the tests need no pandas.
"""

from __future__ import annotations

import base64
import pickle
import zlib
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

Layout = str  # "metamae" | "dabs"


def base(root: Path, layout: Layout, metamae: str, dabs: str) -> Path:
    """The dataset's folder in the chosen layout, created."""
    folder = root / (metamae if layout == "metamae" else dabs)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    """A pandas-style CSV: quoted where a field holds a comma, '\\n' line ends."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


# ----------------------------------------------------------------------------------------------
# tabular, tokens
# ----------------------------------------------------------------------------------------------


def write_higgs(root: Path, layout: Layout, n_pretrain: int = 30, n_transfer: int = 21) -> None:
    """particle_physics/higgs{Pretrain,Transfer}.csv; row i: label i % 2, feature k = i + k/100."""
    folder = base(root, layout, "particle_physics", "particle_physics")
    header = ["", "class_label"] + [f"feature_{k}" for k in range(28)]
    for name, n in (("higgsPretrain.csv", n_pretrain), ("higgsTransfer.csv", n_transfer)):
        rows = [[i, float(i % 2)] + [i + k / 100 for k in range(28)] for i in range(n)]
        write_csv(folder / name, header, rows)


def dna(i: int, length: int = 250) -> str:
    """A deterministic sequence of A C G T whose first base encodes i % 4."""
    return "".join("ACGT"[(i + k * (k + 1) // 2) % 4] for k in range(length))


def write_genomics(root: Path, layout: Layout, n: int = 20) -> None:
    """genomics/genomics{Pretrain,TransferID,TransferOOD}.csv; OOD labels are 10 + i % 60."""
    folder = base(root, layout, "genomics", "genomics")
    header = ["", "domain", "label", "seq", "seq_info"]
    for name, offset, classes in (
        ("genomicsPretrain.csv", 0, 10),
        ("genomicsTransferID.csv", 0, 10),
        ("genomicsTransferOOD.csv", 10, 60),
    ):
        rows = [[i, "d", offset + i % classes, f"b'{dna(i)}'", "b'info'"] for i in range(n)]
        write_csv(folder / name, header, rows)


def protein(i: int, length: int) -> str:
    return "".join("ARNDCQEGHILKMFPSTWYV"[(i + k) % 20] for k in range(length))


CLANS = ("CL0001", "CL0002", "CL0010")


def write_pfam(root: Path, layout: Layout, n: int = 20) -> None:
    """pfam_pretrain_train.csv (clans CL0001/2/10 cyclically) and pfam_transfer.csv."""
    folder = base(root, layout, "pfam", "proteins")
    header = ["", "primary", "protein_length", "clan", "family"]
    for name in ("pfam_pretrain_train.csv", "pfam_transfer.csv"):
        rows = [[i, protein(i, 100 + 5 * i), 100 + 5 * i, CLANS[i % 3], "PF1"] for i in range(n)]
        write_csv(folder / name, header, rows)


def write_tape(root: Path, layout: Layout, n_train: int = 12, n_valid: int = 5) -> None:
    """The four TAPE tasks' <task>_{train,valid}.csv; sequence i has 60 + 10 i residues."""
    folder = base(root, layout, "pfam/transfer", "proteins")
    for split, n in (("train", n_train), ("valid", n_valid)):
        lengths = [60 + 10 * i for i in range(n)]
        seqs = [protein(i, length) for i, length in enumerate(lengths)]
        write_csv(
            folder / f"remote_homology_{split}.csv",
            ["", "primary", "fold_label", "protein_length"],
            [[i, s, (7 * i) % 1195, len(s)] for i, s in enumerate(seqs)],
        )
        write_csv(
            folder / f"secondary_structure_{split}.csv",
            ["", "primary", "ss3", "ss8"],
            [[i, s, str([k % 3 for k in range(len(s))]), "[]"] for i, s in enumerate(seqs)],
        )
        write_csv(
            folder / f"stability_{split}.csv",
            ["", "primary", "stability_score"],
            [[i, s, f"[{0.5 * i - 1:.2f}]"] for i, s in enumerate(seqs)],
        )
        write_csv(
            folder / f"fluorescence_{split}.csv",
            ["", "primary", "log_fluorescence"],
            [[i, s, f"[{3.0 + i / 10:.2f}]"] for i, s in enumerate(seqs)],
        )


def write_shuttle(path: Path, n: int = 40, anomalies: int = 4) -> list[list[int]]:
    """river's ``shuttle.csv.gz`` in its real format: gzip CSV, header f1..f9,anomaly, integer
    fields, '\\n' line ends. Row i's feature k is 10 i + k; the first ``anomalies`` rows are
    label 1. Returns the rows written (features then label)."""
    import gzip

    rows = [[10 * i + k for k in range(1, 10)] + [int(i < anomalies)] for i in range(n)]
    text = ",".join([f"f{k}" for k in range(1, 10)] + ["anomaly"]) + "\n"
    text += "".join(",".join(map(str, r)) + "\n" for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))
    return rows


# ----------------------------------------------------------------------------------------------
# time series
# ----------------------------------------------------------------------------------------------

PAMAP2_SUBJECTS = (101, 102, 103, 104, 107, 108, 109, 105, 106)
PAMAP2_RUN = 1700  # rows per activity run: its last 20 % (340 rows) still holds a window


def write_pamap2(root: Path, layout: Layout) -> dict[int, tuple[int, int]]:
    """9 subject files: per subject, 50 rows of activity 0, a run of activity a, 30 rows of 0,
    a run of activity b. Column 2 (heart rate) is NaN but every 10th row, and NaN in the first
    25 rows; every IMU value of a row equals activity * 1000 + row. Returns subject -> (a, b)."""
    folder = base(root, layout, "sensor/pamap2/Protocol", "sensor/pamap2/PAMAP2_Dataset/Protocol")
    activities = (1, 2, 3, 4, 5, 6, 7, 12, 13, 16, 17, 24)
    chosen = {}
    for s, subject in enumerate(PAMAP2_SUBJECTS):
        a, b = activities[s % 12], activities[(s + 5) % 12]
        chosen[subject] = (a, b)
        acts = [0] * 50 + [a] * PAMAP2_RUN + [0] * 30 + [b] * PAMAP2_RUN
        n = len(acts)
        data = np.zeros((n, 54))
        data[:, 0] = np.arange(n) / 100
        data[:, 1] = acts
        data[:, 2] = np.where(np.arange(n) % 10 == 0, 80.0 + np.arange(n) / 100, np.nan)
        data[:25, 2] = np.nan
        data[:, 3:] = (np.array(acts) * 1000 + np.arange(n))[:, None]
        np.savetxt(folder / f"subject{subject}.dat", data, fmt="%.4f")
    return chosen


# ----------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------


def write_image(
    path: Path, value: int, size: tuple[int, int] = (40, 30), fmt: str | None = None
) -> None:
    """A constant-colour RGB image (value, value // 2, 255 - value)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 255 - value)).save(path, format=fmt)


def write_cifar10(root: Path, layout: Layout, per_batch: int = 10) -> None:
    """cifar-10-batches-py/data_batch_1..5 and test_batch: image i of a batch is constant
    (10 * label) with label i % 10."""
    folder = base(root, layout, "", "natural_images/cifar10") / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(per_batch)]
        data = np.repeat(np.array(labels, dtype=np.uint8)[:, None] * 10, 3072, axis=1)
        batch = {"batch_label": name, "labels": labels, "data": data, "filenames": []}
        with (folder / name).open("wb") as handle:
            pickle.dump(batch, handle, protocol=2)


def write_cub(root: Path, layout: Layout) -> None:
    """CUB_200_2011 with 12 images of classes 1..3; ids 1, 5, 9 are test."""
    folder = base(root, layout, "", "natural_images/cu_birds") / "CUB_200_2011"
    images, labels, split = [], [], []
    for i in range(1, 13):
        cls = (i - 1) % 3 + 1
        rel = f"{cls:03d}.Bird_{cls}/Bird_{i}.jpg"
        write_image(folder / "images" / rel, 20 * i)
        images.append(f"{i} {rel}")
        labels.append(f"{i} {cls}")
        split.append(f"{i} {0 if i in (1, 5, 9) else 1}")
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("train_test_split.txt", split)):  # fmt: skip
        (folder / name).write_text("\n".join(lines) + "\n")


def write_vggflower(root: Path, layout: Layout) -> list[int]:
    """flowers102/imagelabels.mat with 15 images of classes 1..3 and jpg/image_NNNNN.jpg."""
    from scipy.io import savemat

    folder = base(root, layout, "flowers102", "natural_images/flowers")
    labels = [(i * 2) % 3 + 1 for i in range(15)]
    savemat(folder / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    for i in range(15):
        write_image(folder / "jpg" / f"image_{i + 1:05d}.jpg", 10 * i)
    return labels


def write_dtd(root: Path, layout: Layout) -> None:
    """DTD split 1 over 3 categories; the test file lists only two of them."""
    folder = base(root, layout, "imagenet/dtd", "natural_images/dtd/dtd")
    cats = ("banded", "dotted", "zigzagged")
    files = {"train": [], "val": [], "test": []}
    for c, cat in enumerate(cats):
        for k in range(4):
            rel = f"{cat}/{cat}_{k:04d}.jpg"
            write_image(folder / "images" / rel, 50 * c + k)
            split = "train" if k < 2 else "val" if k == 2 else "test"
            if split == "test" and cat == "banded":
                split = "train"
            files[split].append(rel)
    for split, rels in files.items():
        (folder / "labels").mkdir(parents=True, exist_ok=True)
        (folder / "labels" / f"{split}1.txt").write_text("\n".join(rels) + "\n")


def write_traffic_sign(root: Path, layout: Layout, per_class: int = 5) -> None:
    """GTSRB Final_Training/Images/0000{0,1,2}/*.ppm, ``per_class`` each."""
    folder = base(root, layout, "imagenet/traffic_sign", "natural_images/traffic_sign")
    for cls in range(3):
        for k in range(per_class):
            name = f"{cls:05d}/{k:05d}_{k:05d}.ppm"
            write_image(folder / "GTSRB/Final_Training/Images" / name, 30 * cls + k, fmt="PPM")


def write_aircraft(root: Path, layout: Layout, with_val: bool = False) -> None:
    """fgvc-aircraft-2013b/data: 8 images of 2 variants (names with spaces), boxes that keep
    only the top-left quarter (black there, white elsewhere)."""
    folder = base(root, layout, "imagenet/fgvc-aircraft-2013b",
                  "natural_images/aircraft/fgvc-aircraft-2013b") / "data"  # fmt: skip
    variants = ("Boeing 737-200", "A320")
    rows = {"trainval": [], "test": [], "train": [], "val": []}
    boxes = []
    for i in range(8):
        image_id = f"{1000000 + i}"
        image = Image.new("RGB", (80, 60), (255, 255, 255))
        image.paste((0, 0, 0), (0, 0, 40, 30))
        (folder / "images").mkdir(parents=True, exist_ok=True)
        image.save(folder / "images" / f"{image_id}.jpg")
        boxes.append(f"{image_id} 0 0 40 30")
        line = f"{image_id} {variants[i % 2]}"
        if i < 6:
            rows["trainval"].append(line)
            rows["train" if i < 4 else "val"].append(line)
        else:
            rows["test"].append(line)
    (folder / "images_box.txt").write_text("\n".join(boxes) + "\n")
    for name in ("trainval", "test") + (("train", "val") if with_val else ()):
        (folder / f"images_variant_{name}.txt").write_text("\n".join(rows[name]) + "\n")


def write_imagenet(root: Path, layout: Layout, with_val: bool = True) -> None:
    """train/<wnid>/*.JPEG for 3 classes x 6 images (+ val/ or validation/ with 2 each)."""
    folder = base(root, layout, "", "natural_images/imagenet")
    val_name = "val" if layout == "metamae" else "validation"
    for c, wnid in enumerate(("n01440764", "n01443537", "n01484850")):
        for k in range(6):
            write_image(folder / "train" / wnid / f"{wnid}_{k}.JPEG", 60 * c + k, fmt="JPEG")
        if with_val:
            for k in range(2):
                write_image(folder / val_name / wnid / f"val_{c}_{k}.JPEG", 60 * c, fmt="JPEG")


# ----------------------------------------------------------------------------------------------
# pickled DataFrames (real pandas pickles)
# ----------------------------------------------------------------------------------------------


def blob(parts: tuple[str, ...]) -> bytes:
    """Decode one of the stored pickles."""
    return zlib.decompress(base64.b64decode("".join(parts)))


EUROSAT_LABELS = [(7 * i) % 10 for i in range(20)]  # row i: label, image = 100 * label
WAFER_TYPES = ["none", "random", "donut", "scratch", "center", "loc", "edge-loc", "edge-ring",
               "near-full", "unlabeled"]  # fmt: skip


def write_eurosat(root: Path, layout: Layout) -> None:
    """pretrain.pkl (pandas 1.2.5) and transfer.pkl (pandas 3.0.0), 20 rows each."""
    folder = base(root, layout, "eurosat_all", "satellite_images")
    (folder / "pretrain.pkl").write_bytes(blob(EUROSAT_PRETRAIN))
    (folder / "transfer.pkl").write_bytes(blob(EUROSAT_TRANSFER))


def write_wafer_map(root: Path, layout: Layout) -> None:
    """unlabeled.pkl (pandas 2.2.3) and labeled.pkl (pandas 1.5.3), 20 maps each; row i has
    failureType WAFER_TYPES[i % 10] and a (10 + i % 3) x 12 map, dies off-wafer on the first
    row and column, one defective die at (5, 5)."""
    folder = base(root, layout, "wafer_map", "semiconductors")
    (folder / "unlabeled.pkl").write_bytes(blob(WAFER_UNLABELED))
    (folder / "labeled.pkl").write_bytes(blob(WAFER_LABELED))


# ----------------------------------------------------------------------------------------------
# speech
# ----------------------------------------------------------------------------------------------


def write_wav(path: Path, seconds: float = 0.1, rate: int = 16000, freq: float = 440.0,
              fmt: str = "WAV") -> None:  # fmt: skip
    """A sine tone of ``seconds`` at ``rate`` Hz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * freq * t), rate, format=fmt)


def write_librispeech(root: Path, layout: Layout, with_pretrain: bool = True) -> None:
    """dev-clean: speakers 84 and 174, 5 utterances each (FLAC); train-clean-100: speaker 19."""
    folder = base(root, layout, "speech/LibriSpeech", "speech/librispeech/LibriSpeech")
    subsets = [("dev-clean", (84, 174), 5)] + (
        [("train-clean-100", (19,), 2)] if with_pretrain else []
    )
    for subset, speakers, count in subsets:
        for speaker in speakers:
            for utt in range(count):
                name = f"{speaker}-121123-{utt:04d}.flac"
                write_wav(folder / subset / str(speaker) / "121123" / name, 0.05,
                          freq=200 + speaker, fmt="FLAC")  # fmt: skip


AUDIO_MNIST_SPEAKERS = {"train": (28, 56), "val": (12,), "test": (26,)}


def write_audio_mnist(root: Path, layout: Layout) -> None:
    """data/NN/<digit>_<NN>_<i>.wav: digits 0..2, one take each, for a few listed speakers."""
    folder = base(root, layout, "speech/AudioMNIST", "speech/AudioMNIST")
    for speakers in AUDIO_MNIST_SPEAKERS.values():
        for speaker in speakers:
            for digit in range(3):
                write_wav(folder / "data" / f"{speaker:02d}" / f"{digit}_{speaker:02d}_0.wav",
                          0.05, rate=48000)  # fmt: skip


FLUENT_ROWS = {  # split -> (action, object, location) per clip
    "train": [("activate", "lights", "kitchen"), ("decrease", "heat", "none"),
              ("bring", "shoes", "none")],
    "valid": [("increase", "volume", "bedroom")],
    "test": [("change language", "Korean", "none"), ("deactivate", "lamp", "washroom")],
}  # fmt: skip


def write_fluent(root: Path, layout: Layout) -> None:
    """data/{train,valid,test}_data.csv with pandas' index column, wavs/speakers/<id>/*.wav."""
    folder = base(root, layout, "speech/fluent_speech_commands_dataset",
                  "speech/fluent_speech/fluent_speech_commands_dataset")  # fmt: skip
    for split, rows in FLUENT_ROWS.items():
        table = []
        for i, (action, obj, location) in enumerate(rows):
            rel = f"wavs/speakers/2BqVo8kVB2Skwgyb/{split}-{i}.wav"
            write_wav(folder / rel, 0.05)
            table.append([i, rel, "2BqVo8kVB2Skwgyb", f"{action} {obj}", action, obj, location])
        header = ["", "path", "speakerId", "transcription", "action", "object", "location"]
        write_csv(folder / "data" / f"{split}_data.csv", header, table)


def write_google_speech(root: Path, layout: Layout) -> dict[str, list[str]]:
    """yes/ and no/ with 4 clips each, one 10 s background-noise clip; returns the lists."""
    folder = base(root, layout, "speech/google_speech", "speech/google_speech")
    names = {"all": []}
    for word in ("yes", "no"):
        for k in range(4):
            rel = f"{word}/{k:08x}_nohash_0.wav"
            write_wav(folder / rel, 0.05)
            names["all"].append(rel)
    write_wav(folder / "_background_noise_" / "white_noise.wav", 10.0)
    names["all"].append("_background_noise_/white_noise.wav")
    names["validation_list.txt"] = ["yes/00000001_nohash_0.wav", "no/00000001_nohash_0.wav"]
    names["testing_list.txt"] = ["yes/00000002_nohash_0.wav", "no/00000003_nohash_0.wav"]
    for name in ("validation_list.txt", "testing_list.txt"):
        (folder / name).write_text("\n".join(names[name]) + "\n")
    return names


def write_voxceleb1(root: Path, layout: Layout) -> None:
    """iden_split.txt over speakers id10001..id10003 (sets 1, 2, 3) and their wavs."""
    folder = base(root, layout, "speech/voxceleb1", "speech/voxceleb1")
    lines = []
    for s in range(3):
        for k, number in enumerate((1, 1, 2, 3)):
            rel = f"id1000{s + 1}/vid{k}/0000{k}.wav"
            write_wav(folder / "wav" / rel, 0.05)
            lines.append(f"{number} {rel}")
    (folder / "iden_split.txt").write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------
# real pandas pickles (see module docstring)
# ----------------------------------------------------------------------------------------------
SMALL_FRAMES = {
    "1.2.5": (
        "eNqdVEtPFEEQnll2FgSNwUiAC4kHdTk4gcQDBxINoIluXBPilUx6dnu3J870bPrBI5FED8vD9I2Sv6tVPbPJgnDQ"
        "PmzVdtfr+6pqvke/fjYDf9ziiMk+03GvVDweKFZwcA/2mGHvvX4F6z/gFNqumRRDBW5t2jyThivJch0XTLIhVxrc"
        "w5287H39VP2v3NsH6L9y07HPj7mOU6Yx3Xwi+VHyge7QQSy4aKL7xH0sBtyStMXopHIvbG4yphQ7wXyJ4r1SaqNs"
        "z6CLi7whuFlM502uoBOMYTdM4Rz2od0JOzNjEEsu6puTESF0jc9bcHlRvc648Bt0u92Pv/H4n84bA+klYWiNsmOe"
        "I8iFActyq/gXCuCinKU8B45mrimJta49w2DikVu9C7Vickiw90lOQRXrXRdpw5TBil1Tm3IEWA8qHJXQx+RUx5Mp"
        "LlDlKuthTclAlUVqBwPPe/t6Jbh5GrWcrSWINdfIbiDfvoU8QEjE1xm4cBcMYXoqlolOsTohs0HP4hkRJLba1xvB"
        "/x0Q21WwcxBvfaY7goW3oMzUsh7mIPqXYI1bzq1aztVy/r5g2ORSUt/3SmkNrgvvD/krlcmhnwFqkXgkHlNHF//m"
        "KxxXbImXDI2x5/Ws3OvQGE/ofS5e8CkffgqutRFvvo43q01hOF0g5l0rpR3UgD503zpkuaWXHTeHS5zgI87wXGoz"
        "XCOJaqTzrEebQCg7ISW2VIwS74QWh50A76tbbrWf8gRXB4HTak6+GUnBDfO7eoARmTH4NaACk0HOhl5dZnleHumk"
        "b0eYjxme+MXRcKFtGv8Bmvl8Lw=="
    ),
    "1.5.3": (
        "eNqdU89rFDEU3tnd2dauWqqoK4LgQdgeXDyKCIItQh1coXjxUEJmJvODZjJDkqFdsKAHty3k1qf/rr5kZnW3uhdz"
        "yHuZee/L99778sX/fqvfccvsVFTEVE2iUrJJImnBwNzYp5q+df4V7H6FMxibPilSCebxcnguNJOCcjUpqKApkwrM"
        "zTe8jI7fN2dMN/fbDMLzUP1JAbNNalHl0TFnJLQ5NvieqItq1qAXNdc5lZLOEJVIFpVCaVlH2gb6LhDMBmK7kCsI"
        "Ot9gzwvhHA5hHHhBN+jNIds2fqxnla3EdD+8gMuL5n/PeJ9hOp2++4nLbcFrDeHlEdZ6Z4kFukzmEZghSWRZhHWS"
        "uLrGP553/m9BNjLdfIXJq2tMOsikqeAcjLcHGgOzJ39f6bW229pea9vhdvzfVz5dwGW768C615IHrd1s7dY6MNMX"
        "pUDZ+PulqDXKh8UpeyZzkQLDQsxmWOc4SoEz9xXPI+aGhQiebUDQtXs2tJRGayhtrFxtx9pU8dLSWIaZg53faFWk"
        "MTtlahJShRy3iGAn5MB+QxbZgfEXvhN5jMKH7Ha2Y8WU3V1IqYeHR04agyo/ZVa9w4TmvJbso9WW8TkNGW/K7Qv7"
        "cKb13DIMzMN/kZFUpJbNobVLDLJPU+yRplJjh0xf6bICFAg6DB3PYbK56zlBVWOvLePFsyUF09SVcISUqNb4IM/A"
        "DEjCaercB5Tz8kSRuK5wEFQz4ogruFB1OPkFUWtQng=="
    ),
    "2.2.3": (
        "eNqdU89rE0EUzibZtDZiKAWNCIIHIT24eBQRBFuEuhihePFQhtnd2R90dnaZmaUNWNCDaQtz69N/V99MNppUc3EO"
        "897svvfN99775ov/fdTvuGV2ayoSqoK4kixIJS0ZmDuHVNO3zr+B/a9wARPTJ2UmwTxeDS+EZlJQroKSCpoxqcDc"
        "fcOr+PT94ozp5n6bQXgRqT8pYEakEXURn3JGIpvjgkVT1rOAOPiy4bqgUtIZwhLJ4kooLZtY20jfRYLZQnAXcgNh"
        "5xsceBFcwjFMQi/shr055CPjJ3pW21JM98MLuL5a/O8Z7zNMp9N3P3G5LXytIbo+wWL3Vmmgz2QRgxmSVFZl1KSp"
        "q2zy43nn/xbkY9Mt1qi8ukWlg1QWJVyC8Q5AY2D+5O8rvdZ2W9trbTvejv/7yqdLuHx/E1j3VvKgtdut3dkEZvqi"
        "Eigc/7ASjUYBsSRjz2QhMmBYiNmOmgJnKXDqvuJFzNy0EMGzDQi7ds+HltJ4A6WttavtXBdVvLQ0VmHmYAc4Xpdp"
        "ws6ZCiKqkOMOEeyMHNlvyCI/Mv7SdzJPUPqQ38t3rZryvaWWenh45LQxqItzZvU7TGnBG8k+WnEZn9OI8UW5fWGf"
        "zrSZW4ahefgvMpKKzLI5tnaFQf5pij3SVGrskOkrXdWAAkGHoeM5TDZ3PScoa+y1Zbx8uKRkmroSTpAS1Rqf5AWY"
        "AUk5zZz7gHJenSmSNDUOgmpGHHEFV6qJgl91vFFg"
    ),
    "3.0.0": (
        "eNqdVN9rE0EQzq9L20QtEtCCovggpA8G3+qDKG1jxQZPqL6WZe9ukz1yt3fs7dkGLOqDTQv71tF/yr/GN990dnNn"
        "k0pA3MDOXHZmdr75ZvaT8/V7o2KXbqZUBDQDvdaniu5JGjO4gM3PcAJd3SDxSIK+N7Pp+YlkvVAoJgWNsl5MBR0x"
        "ib7XdqLEH7+efaO7vlV4kCj0sksX0OskF2nojyNGPONjjUUep5MeseHjPFIhlZJOMCyRzE9EpmTuK2PpWEvQKxjc"
        "mlzAoPIFdqseTOEAuoMq/uqnwNe1E6hJaqDo2psncH42O6/r6gdwXXf/Fy67DZ4r8M4PEWxnPg3UmQx90G0ylEns"
        "5cOhRdb99rjyfwv4hq6FC6k8vZJKBVNBALVBfQq6ugsKDfmDv6+sFrJWyHohC04rzp8rH5bh+OayYLUrzs1Crhay"
        "tSwYw2z1qpeHSJhAap0sCn1mKTE8GJSDmtl5W3cW+sFyhx53CUknx5cd4fa3zckO9ccsMNRdL9xKh/ZbJUMx2i64"
        "37/f/NFw7RWV8qxf0t5MJ4onAl5+/DkDcGrsbvCbpmN4p+yXOn7csfw3RCIYwugnIlc4DywYsUcmpEV6Ch7fsgVY"
        "QGYqurGkoisLlTNtOSNhy1RxPswUzP0bi1MWsGOW9TyaYU4tItgReWX+Q2gI1il1O6UBTi7wZ3x7riAv+N4/I2+m"
        "4TEz09ke0jDKJXtnaqidiHosKtFjfczb4OY2mo9JtA6oGLG5TPh7F7tAUamwB3QjU0kK2OeoMFSq1pOZDR8WpAlr"
        "bDIf2jdHr5GYKWqhHOLdVCl8WU6QRzKM6Miqt2kUJUcZCfIUW40qRmyGGZxludf7DUizlws="
    ),
}
EUROSAT_PRETRAIN = (  # pandas 1.2.5
    "eNrs0c9v2+YZwHE6jNdmnQ4b1G69BNiNvaS/0lQDNuxFbAxZiXmA7oMgJ3Jeo7YSyAy2ABuwHVo1gG59pPP+kp3zN/XS"
    "0SILK8WuA3T4fF98zCd5SVEi/3m4/k9ZbFv9/Pl0/mR6de/xs8Xs3tliejmL1Z3jaTP9w3b+Nj74V/wjqtXtyeXTRazu"
    "7p5+Pm9mi/n04ure5XQ+fTpbXMXqZw8vnj3+8k/dv7vLq7+01//qzQufzP42u7p3Or1qb/fTyXz218kfr/+vvSC/szr8"
    "Yd7e+En7ZWL17vzF5fOX3eWXLy6a8+liMX3Z3m+ymD1+Nr9qFi8eN+0lq8PtibF6q73d9pRvoy6+iqOD01jGOKr6oC6/"
    "ivzu6vBJ8/L59S9c3frzKF590+2Wq4O/x8nJyRfft23/1L9v4vTV9W94++z8YjbfPqLDi+np7KJ9VFezeXM+n118ErP2"
    "tNXt7fbJi6/bD8uD1fv/61cvpvOn1z97fH3c+an5g5PV4VUzXTTtN17dvmqePY96eD3M2uFg+5mz6+/xi51n0Y6zxfnj"
    "WL0zOVs8uzx9cXa2fe7V5t/Fm73VH2/3x4P++HZ/POyPt/rjnf74k/5Y/p8+L/Ld1a3zN97Ab3/0Bor20bbvbfh1rA6O"
    "orl+tsP8y+vXmt//4aXeut7Ov+5e1Pnl04/uNednsR0/vhk/uRk/vRnv34yf3YwPbsbPb8bRzfibbrxzfYuPduaPd+ZP"
    "duZPd+b7O/NnO/ODnfnznXm0M3f3zaNqU6QfvxVJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJ"
    "kiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJ"
    "kiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJ"
    "kiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJ"
    "kiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiRJkiTtQ+sH/RD5"
    "7urW2f149c0yxlHVZf7dycnJF9+3bf/URROndWrXYBk5Ne1JeVRtilT2H/DhMQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+2M9LLoiT+rUrsEycmpiHHlUbYpU9tuv"
    "jwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "2B/rYdEVeVKndg2WkVMT48ijalOkst9+/RAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgP2xHhZdkSd1atdgGTk1MY48qjZFKvvtR8cAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAOyP9bDoijypU7sGy8ipiXHkUbUp"
    "Utlvf3cEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAMD+WA+LrsiTOrVrsIycmhhHHlWbIpX99qMjAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD2x3pYdEWe1Kldg2Xk1MQ48qjaFKnst6fHAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADsj/Ww6Io8qVO7BsvIqYlx"
    "5FG1KVLZb793DAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAADA/lgPi67Ikzq1a7CMnJoYRx5VmyKV/fbmCAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACA/bEeFl2RJ3Vq12AZOTUxjjyqNkUqC0mSJEmSJEmSJEmSJEmS"
    "JEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmS"
    "JEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmS"
    "JEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmS"
    "JEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmS"
    "JEmSJEmSJEmSJEmSJEmSJEmSJO1f62E/RJ7UqV2DZeTUxDjyqNoUqey3PzwGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAGB/rIdFV+RJndo1WEZOTYwjj6pNkcp++/UR"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD7"
    "Yz0suiJP6tSuwTJyamIceVRtilT2268fAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAACwP9bDoivypE7tGiwjpybGkUfVpkhlv/3oGAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACA/bEeFl2RJ3Vq12AZOTUxjjyqNkUq"
    "++3vjgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAA2B/rYdEVeVKndg2WkVMT48ijalOkst9+dAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAwP5YD4uuyJM6tWuwjJyaGEceVZsilf329BgAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgP2xHhZdkSd1atdgGTk1MY48"
    "qjZFKvvt944BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAADgv+3Ov2sUQRQA4Lt4CVE4RAgESwv1bA4DFpaHYrVikT4se8kmc7hnwu2uP4qUehG2c5J/SsF/ydmYwso6"
    "xTfDx759bx7vAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAC3x+XO4O+JIc9m6Y7XMcyauB/Dy8nVYHbnpnz1GgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACA2+Py7XBwfWLIs1m643UMsybux7KJ8/IgTsI43D9Pnwdh"
    "J+xmg68xPFyn8iQbZsP08+j7QQxPivQ4PHvXfkuV/zRs3DRMwuPwtPynpzyP3dbz6d6L6V5Mvd2o+FzWMdzrtubV6eH7"
    "OqaePr/1sajavvKq216erPJUrGO3PW8XVbP4kMLNuloclvFH7Kdlw35w2y/zM7wJv8LvbJCNso3rbNnWaYFulDdfzmJ3"
    "96hoiuNVsSxTnC/LpugTaWy3WTTNqo79gvlxVZxch7tFVZ1+qvOj9izNK5oyr4p5WdXxom7n0z8mOZQJ"
)
EUROSAT_TRANSFER = (  # pandas 3.0.0
    "eNrs0k9v2+YdwHHaTNIEnbBDhVxWdLsU4C7pvzRNgQHjYmELQswbpPNgiK6TR4jtBAoNLMCGbYdGDaDbftJ5LyevYu9h"
    "t6GXjhIZ2Ol9gA6f74OP+TMe0jIp/v366t95tm154/n0/Jvpi1jeGk2b6W/n07OT+Gf88h/x1yiW147Onsxj+VF3zp3j"
    "Z/OTO7Pz5mR+Pj19cedsej59cjJvr/3Jg9Nnx09/3/3eXr683V9xdDqrX1xeEsufHl2cP58dPz09Oao312xO/uCdk6fz"
    "+fRle+aHR0fPX/758vTD0W82Ow+mx09PvtlcNugve3vB+5NmPjt/sj2r3X/08xv/uXa4iHGk7O3eqHn5fHN77V2/bNKz"
    "8/jd3/7bPYdX7XnL2+cXZ89f3jna3ufZxWkz2/7t9v6O5ifHz85fNPOL42Zz/fXtmbF8r/0P+s+rsm/jYK+OzScW1V41"
    "/DbSh8vr37z9yP0/3I/X33W7+XLvL3F4ePjoh7btj+rXTdSv/9Q+85uzsyef3mlmj2M7fnY5fn45fnE53r0cv7wc712O"
    "X12O9y/Hr7vx1uYjPr0yf3Zl/vzK/MWV+e6V+csr870r81dX5vtX5u5zT9q7fRX18mZ9MWsf83n79V1/cTo7Ptk+yPbp"
    "7W0eVLW//freX35w9Ytp55P57Lj9wo8ez5+d1RePH29fumL9r+zd3uuP1/rjXn+82R+v98f9/nirP97oj/n/6e9F+ni5"
    "P3vndfjVj16HrH1Am5foVSz3DqLZPIZR+/v+uw8m/Sx9tHnv0i/evnXbS1KxeZNSVayz8sf3IEmSJEmSJEmSJEmSJEmS"
    "JEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmS"
    "JEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmS"
    "JEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmS"
    "JEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmSJEmS"
    "JEmSJEmSJEmSJEmSJEmSJEmSpF1oda8fIn283H98N15/t4hxFFWe/nh4ePjoh7btjyproq7Kdg0WkSZNe1KqinVW5v0f"
    "+GQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AMDuWA2zrkh1VbZrsIg0aWIcqSrWWZn3228OAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADYHath1hWprsp2DRaRJk2MI1XFOivzfvvNAwAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAdsdqmHVFqquyXYNFpEkT40hV"
    "sc7KvN9+OAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAYHeshllXpLoq2zVYRJo0MY5UFeuszPvt7w8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAANgdq2HWFamuynYNFpEmTYwjVcU6K/N+++EBAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAC7YzXMuiLVVdmuwSLS"
    "pIlxpKpYZ2Xeb09HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAADsjtUw64pUV2W7BotIkybGkapinZV5v317BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADA7lgNs65IdVW2a7CINGliHKkq1lmZ99vrAwAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAdsdqmHVFqquy"
    "XYNFpEkT40hVsc7KPJMkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIk"
    "SZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIk"
    "SZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIk"
    "SZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIk"
    "SZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSZIkSdLutRr2Q6S6Kts1WESaNDGOVBXrrMz7"
    "7U9GAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AADsjtUw64pUV2W7BotIkybGkapinZV5v/3mAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACA3bEaZl2R6qps12ARadLEOFJVrLMy77ffPAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAYHeshllXpLoq2zVYRJo0MY5U"
    "FeuszPvthyMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAHbHaph1Raqrsl2DRaRJE+NIVbHOyrzf/v4AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIDdsRpmXZHqqmzXYBFp0sQ4UlWsszLvtx8eAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACwO1bDrCtSXZXtGiwi"
    "TZoYR6qKdVbm/fZ0BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAADA7lgNs65IdVW2a7CINGliHKkq1lmZ99u3RwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA8L/252c1aiAMAPhuuy22UEGof0BQj3vag09QUBAN9NCe"
    "S8h2p81Cmi6blOpBPNmtkJvTPo3v4LN482iSKvgIPfxm+A3fzGS+7wsAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAHB/3OwO7kbMp8leO3dWMT+s40HMk/HtYG/97/Xt"
    "GwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "7o+bs+GgHzGfJnvt3FnF/LCOBzHUcZq/TdaS9WS4avfJWreu4lEcN88WWTnLqsnx+TJM5uUsfAzVZJpVITbbaRku0/fd"
    "Wfwe80Gz8S/+3D4czbI6i/nD/NGHl5u/Rvtdyvxx/uTdl993bVx1B8/zF8nga8xfddfjZJist5vxt67yg5N5EcrsrK20"
    "UWTTUMRmqwplPS9D8brv+SpOm1H/xf5Fn+1H28T2QVaehv86yX/uNxtVnS3rmAyaUVWfL2Ky2wWhDYb9y9AtzSitPy3a"
    "Kl3nJ8u+8lZ6Fuqs/5Wjto+srpdVm7TZTE+K7LQPn2ZFcX5ZpbOLRTE/zuqQ9t1W8bq6mE7+AI8HspI="
)
WAFER_UNLABELED = (  # pandas 2.2.3
    "eNrt2s2LHEUYx/Ge2Zk1+6IhJGhE8P1lQsh48JJDQDEiaOMIwevSVnfXTDXpqW6qq0kGDEkOm81C4WXLXPy//Gc8xOoe"
    "g5tFPajIrn77MFOz213d/eF5oH5QD8Y//PRz1B/uQi10LpppVhk5nRuxlN5tfSas+LwfH/krD/09P3GjZLkw3r1+/PRC"
    "W2m0KJvpUmixkKbxbvfTsspuf7X+HS53L/96RVIWafPbJd6dT1pdF9ntUiZpd01/sm6X9Wqa9NMv29IWwhixCtMmRmaV"
    "bqxpM9udOe7P9O6FMHl/ypGPo31/c5D6A3/LT+JBPIwvPfLqvBvndlV3r+KGX1/3h4/X/99wg+/8bDb78mk4+o/4Y+vT"
    "w73uZXWlg8OmCY9eLcPN8kq3NtysyYywmQr/ymT3Jt5thEf37pzMF/JaP9zqh6bQizDWUphr87Ysw7jVpUhlKXOv3lBv"
    "qrfU2+od9a56T72vPlATd/H4q4exNEWYbSeZm2qZtvN5rzl58slOxPE3jvt844MPPv9Rn6d/8I0P9YMPPvisD68uu2Hx"
    "XBy4cSIORCEOxNvxbrxx4N3gprfhRHV18uTbXZbRLMFpUXzwwYclOPWDDz744PNPR5QP4511/FAfPQsfD14kQBA+aD58"
    "8MGH8EH94IMPPvjg82+Hs92T4YzNWYQzmg8ffPAhnFE/+OCDz19bXG+fXFyz7YrFNc2HDz74sLimfvDBBx982HZF+KD5"
    "8MGHb8IH9YMPPvjgg0/EtisOwhnNhw8+hDPCGfWDDz74/Mnimm1XLK5pPnzwwYfFNfWDDz744MO2K8IHzYcPPvgQPqgf"
    "fPDBBx98/i/hjG1XhDOaDx988CGcUT/44INPxLYrFtc0Hz744MPimvrBBx988DlD4YNtV4QPmg8ffPAhfFA/+OCDDz74"
    "nIJwxrYrwhnNhw8++BDOqB988MEnYtsVi2uaDx988GFxTf3ggw8++Jyh8MG2K8IHzYcPPvgQPqgffPDBBx98TkE4Y9sV"
    "4YzmwwcffAhn1A8++OATse2KxTXNhw8++LC4pn7wwQcffM5Q+GDbFeGD5sMHH3wIH9QPPvjggw8+pyCcse2KcEbz4YMP"
    "PoQz6gcffPCJ2HbF4prmwwcffFhcUz/44IMPPmcofDy37Upan7pzaVuUttCNd+OmLDLpj3wcxcN4cBBOiYfd577f8xN3"
    "uRY6F800q4ycFjqXd2UzTUUjvdtOtLyTfNH9LVyunBs/G98LF45yYYVXL6kLcbTv1cVuykk8iIfhx2uH3dQ7c1GUrZHf"
    "rOow22Zd3JVls36+kRZL6Wftoy4tfe9e/b2HMEIvuqe41X0fu7P6cRZeygpjwyu5UWOr2seXuoEMg0E/p+w+3Cixq9q7"
    "re5J56a7o9tKltKK/tH3go2w1jRhUreZzEux6IeviLKs7jRJ3tZBTliZlCLtnvxx06bTXwCuE75H"
)
WAFER_LABELED = (  # pandas 1.5.3
    "eNrt2s2P20QYx3EnmyzdF6hKCxQh8VZeglDTAxcOSCCKkMAiSBXXlRnbk4xVZ2yNx2ojtWo5bLcrjbjs0Av/Fv8NhzJ2"
    "qNiugAMgtAtfH5LJrj22P3oeaX7S3B//8NPPUX+4C7XQuWimWWXkdG7EUnq39Zmw4vN+fOTf+87f9RM3SpYL492rx08v"
    "tJVGi7KZLoUWC2ka73Y/Lavs5lfr3+Fy9+KvVyRlkTa/XeLd+aTVdZHdLGWSdtd0J7+g22W9Ws++bEtbCGPEKsyaGJlV"
    "urGmzWx34rg/0btnwtz9KUc+jvb99UHqD/wNP4kH8TC+9MCr826c21XdvYkbfv2hP3y4/v+GG9zxs9nsy8fh6D/ij61P"
    "D/e6d9WVDgybJjx5tQw3yyvd2nCzJjPCZir8K5Pdi3i3EZ7cu3MyX8ir/XCrH5pCL8JYS2GuztuyDONWlyKVpcy9ek29"
    "rt5Qb6or6i31tnpHvasm7vljbx6G0hRhsp1kbqpl2s7nveXk0Sc7EcffOO7xjQ8++PxHfR7/wTc+1A8++OCzPry67IbF"
    "U2ngoxNpIAppIN6Od+ONA+8G170NJ6r3J4++3WUZzRKcFsUHH3xYglM/+OCDDz7/dES5Fu+s44f64En4uP8sAYLwQfPh"
    "gw8+hA/qBx988MEHn387nO2eDGdsziKc0Xz44IMP4Yz6wQcffP7a4nr75OKabVcsrmk+fPDBh8U19YMPPvjgw7YrwgfN"
    "hw8+fBM+qB988MEHH3witl1xEM5oPnzwIZwRzqgffPDB508W12y7YnFN8+GDDz4srqkffPDBBx+2XRE+aD588MGH8EH9"
    "4IMPPvjg838JZ2y7IpzRfPjggw/hjPrBBx98IrZdsbim+fDBBx8W19QPPvjgg88ZCh9suyJ80Hz44IMP4YP6wQcffPDB"
    "5xSEM7ZdEc5oPnzwwYdwRv3ggw8+EduuWFzTfPjggw+La+oHH3zwwecMhQ+2XRE+aD588MGH8EH94IMPPvjgcwrCGduu"
    "CGc0Hz744EM4o37wwQefiG1XLK5pPnzwwYfFNfWDDz744HOGwgfbrggfNB8++OBD+KB+8MEHH3zwOQXhjG1XhDOaDx98"
    "8CGcUT/44INPxLYrFtc0Hz744MPimvrBBx988DlD4eOpbVfS+tSdS9uitIVuvBs3ZZFJf+TjKB7Gg4NwSjzsPvf9np+4"
    "y7XQuWimWWXktNC5vC2baSoa6d12ouWt5Ivub+Fy5dz4yfhuuHCUCyu8ek5diKN9ry52U07iQTwMP1457KbemYuibI38"
    "ZlWH2Tbr4rYsm/XzjbRYSj9rH3Rp6Xv38u89hBF60T3Fje772J3Vj7PwUlYYG17JjRpb1T6+1A1kGAz6OWX34UaJXdXe"
    "bXVPOjfdHd1WspRW9I++F2yEtaYJk7rNZF6KRT98SZRldatJ8rYOcsLKpBRp9+QPmzad/gK2SL2F"
)


# ----------------------------------------------------------------------------------------------
# checks shared by the loader tests
# ----------------------------------------------------------------------------------------------


def item_keys(dataset: object) -> list[object]:
    """A hashable identity per item (file, CSV row, window, array row), through index subsets:
    two splits are disjoint when their keys are."""
    from metamask.data.bundles import IndexSubset
    from metamask.data.dabs.sensor import PamapWindows
    from metamask.data.formats.audio import AudioFiles
    from metamask.data.lazy import CsvRowsDataset, ImageFiles

    if isinstance(dataset, IndexSubset):
        inner = item_keys(dataset.base)
        return [inner[i] for i in dataset.indices]
    if isinstance(dataset, CsvRowsDataset):
        return [(str(dataset.rows.path), int(r)) for r in dataset.order]
    if isinstance(dataset, ImageFiles | AudioFiles):
        return [str(p) for p in dataset.paths]
    if isinstance(dataset, PamapWindows):
        return list(zip(dataset.recs.tolist(), dataset.starts.tolist(), strict=True))
    return [(id(dataset), i) for i in range(len(dataset))]  # type: ignore[arg-type]


def assert_disjoint(bundle: object, repeats: bool = False) -> None:
    """train, val and test share no item, and none is empty; with ``repeats`` an item may occur
    twice within one split (PAMAP2 draws windows with replacement, as DABS does)."""
    keys = {name: item_keys(getattr(bundle, name)) for name in ("train", "val", "test")}
    for name, k in keys.items():
        assert k, f"{name} split is empty"
        assert repeats or len(set(k)) == len(k), f"{name} split repeats an item"
    assert not set(keys["train"]) & set(keys["val"])
    assert not set(keys["train"]) & set(keys["test"])
    assert not set(keys["val"]) & set(keys["test"])


def assert_items(bundle: object, count: int = 3) -> None:
    """The first items of every split have the declared shape, dtype and label range."""
    import torch

    info = bundle.info  # type: ignore[attr-defined]
    sets = [bundle.train, bundle.val, bundle.test]  # type: ignore[attr-defined]
    if bundle.pretrain is not None:  # type: ignore[attr-defined]
        sets.append(bundle.pretrain)  # type: ignore[attr-defined]
    for dataset in sets:
        for i in range(min(count, len(dataset))):
            x, y = dataset[i]
            assert tuple(x.shape) == info.input_shape, (info.name, tuple(x.shape))
            expected = torch.int64 if info.modality == "tokens" else torch.float32
            assert x.dtype == expected, (info.name, x.dtype)
            if info.modality == "tokens":
                assert int(x.min()) >= 0 and int(x.max()) < info.vocab_size
            else:
                assert torch.isfinite(x).all(), info.name
            if info.metric == "token_accuracy":
                assert y.shape == info.input_shape and y.dtype == torch.int64
            elif info.num_classes == 0 and info.labelled:
                assert y.shape == () and y.dtype == torch.float32
            elif info.labelled:
                assert y.shape == () and y.dtype == torch.int64
                assert 0 <= int(y) < info.num_classes, (info.name, int(y))
