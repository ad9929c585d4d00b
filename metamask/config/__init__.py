"""Run specs: YAML files (composed with ``extends:``) as typed, frozen dataclasses, strictly.

A spec (``problems/<method>-<dataset>.yaml``) names the data, the model, the optimization graph
(Betty nodes and their edges), the training budget and the evaluation. Every key is checked: an
unknown key, a value of the wrong type or a malformed file raises :class:`ConfigError` with the
file and the dotted key path in one line. The modules, one job each: :mod:`.schema` (the
dataclasses), :mod:`.files` (YAML files, ``extends:``, ``--set``), :mod:`.parse` (strict
parsing), :mod:`.origins` (which file wrote each key, for errors). Node-type and estimator
options are validated later by their owners, with the same :func:`parse_dataclass`.
"""

from metamask.config.files import apply_override, load_spec, merge_into, read_spec_file, read_yaml
from metamask.config.origins import KeyOrigins
from metamask.config.parse import (
    node_spec_from_dict,
    parse_dataclass,
    spec_from_dict,
    spec_to_dict,
    spec_to_yaml,
    spec_to_yaml_dict,
    written_form,
)
from metamask.config.schema import (
    BACKBONES,
    NODE_COMMON_KEYS,
    ArraySource,
    AugmentSpec,
    DataSpec,
    DecoderSpec,
    EncoderSpec,
    EstimatorSpec,
    EvalSpec,
    FinetuneSpec,
    GraphSpec,
    ModelSpec,
    NodeSpec,
    OptimizerSpec,
    ProbeSpec,
    RunSpec,
    TrainSpec,
)
from metamask.errors import ConfigError

__all__ = [
    "BACKBONES",
    "NODE_COMMON_KEYS",
    "ArraySource",
    "AugmentSpec",
    "ConfigError",
    "DataSpec",
    "DecoderSpec",
    "EncoderSpec",
    "EstimatorSpec",
    "EvalSpec",
    "FinetuneSpec",
    "GraphSpec",
    "KeyOrigins",
    "ModelSpec",
    "NodeSpec",
    "OptimizerSpec",
    "ProbeSpec",
    "RunSpec",
    "TrainSpec",
    "apply_override",
    "load_spec",
    "merge_into",
    "node_spec_from_dict",
    "parse_dataclass",
    "read_spec_file",
    "read_yaml",
    "spec_from_dict",
    "spec_to_dict",
    "spec_to_yaml",
    "spec_to_yaml_dict",
    "written_form",
]
