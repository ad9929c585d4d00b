"""The data a run spec names: its pretraining dataset (registered or the user's arrays), the
evaluation dataset, and their facts without loading them.

Both :mod:`metamask.run` and :mod:`metamask.compose` load data through here.
"""

from __future__ import annotations

from metamask.config import RunSpec
from metamask.config.origins import origin_of
from metamask.data.augment import active as augmentation_active
from metamask.data.augment import augment_errors
from metamask.data.base import DataBundle, DatasetInfo, LoadOptions
from metamask.data.registry import get_dataset, load_dataset
from metamask.data.user_arrays import array_dataset_entry, load_array_dataset
from metamask.errors import ConfigError, DataError


def load_options(spec: RunSpec) -> LoadOptions:
    """How the spec asks datasets to be split and where their files lie."""
    return LoadOptions(
        seed=spec.seed, val_fraction=spec.data.val_fraction, data_root=spec.data.data_root
    )


def pretrain_info(spec: RunSpec) -> DatasetInfo:
    """Facts of the spec's pretraining data, without loading it."""
    if spec.data.arrays is not None:
        return array_dataset_entry(spec.data.dataset, spec.data.arrays).info
    return get_dataset(spec.data.dataset).info


def load_pretrain_data(spec: RunSpec) -> DataBundle:
    """The spec's pretraining dataset: a registered one, or the user's arrays (data.arrays)."""
    if spec.data.arrays is not None:
        return load_array_dataset(spec.data.dataset, spec.data.arrays, load_options(spec))
    return load_dataset(spec.data.dataset, load_options(spec))


def load_eval_data(spec: RunSpec, pretrain: DataBundle, source: str = "<spec>") -> DataBundle:
    """The probe's dataset: the pretraining one, or ``eval.dataset`` (transfer, same shape)."""
    if spec.eval.dataset is None or spec.eval.dataset == pretrain.info.name:
        return pretrain
    bundle = load_dataset(spec.eval.dataset, load_options(spec))
    _check_same_inputs(pretrain.info, bundle.info, source)
    return bundle


def check_eval_data(spec: RunSpec, source: str = "<spec>", here: bool = True) -> None:
    """Refuse, before training, an ``eval.dataset`` that is unknown, whose inputs differ from
    the pretraining data's, or (with ``here``) that cannot load here. Facts and the cheap
    availability check only: nothing is loaded."""
    name = spec.eval.dataset
    if name is None or name == spec.data.dataset:
        return
    where = f"{origin_of(source, 'eval.dataset')}: eval.dataset"
    try:
        entry = get_dataset(name)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    reason = entry.requires(load_options(spec)) if here else None
    if reason is not None:
        raise DataError(f"{where}: dataset {name}: {reason}")
    _check_same_inputs(pretrain_info(spec), entry.info, source)


def check_augment(spec: RunSpec, source: str = "<spec>", info: DatasetInfo | None = None) -> None:
    """Refuse ``data.augment`` settings the pretraining data cannot take (a flip on signals,
    a shift on tabular rows, a padding as large as the image...), in one line naming the key.
    ``info``: the data's facts when already known (a bundle given to the graph builder)."""
    if not augmentation_active(spec.data.augment):
        return
    errors = augment_errors(spec.data.augment, info or pretrain_info(spec))
    if errors:
        key, why = errors[0]
        where = f"data.augment.{key}"
        raise ConfigError(f"{origin_of(source, where)}: {where}: {why}")


def _check_same_inputs(ours: DatasetInfo, theirs: DatasetInfo, source: str) -> None:
    if (ours.modality, ours.input_shape, ours.vocab_size) != (
        theirs.modality,
        theirs.input_shape,
        theirs.vocab_size,
    ):
        raise DataError(
            f"{origin_of(source, 'eval.dataset')}: eval.dataset: {theirs.name} has "
            f"{theirs.modality} inputs {theirs.input_shape} but the encoder was pretrained on "
            f"{ours.name} ({ours.modality} {ours.input_shape})"
        )
