"""Read the pickles of the DABS datasets without pandas and without running their code.

Unpickling can call any importable function, so an untrusted pickle can run code. DABS stores
eurosat and wafer-map as pickled pandas DataFrames and CIFAR-10 ships as pickled dicts. This
module unpickles them with a whitelist: numpy arrays and dtypes, a few builtins, and *stand-ins*
for the pandas classes a DataFrame pickle names (DataFrame, BlockManager, Index, RangeIndex,
blocks, StringArray). Any other global in the file is refused with a DataError, so nothing
outside that list is ever imported or called. The stand-ins only record the state pandas
stored; :func:`frame_columns` rebuilds the columns from it. Checked against DataFrame pickles
written by pandas 1.5, 2.2 and 3.0. Still: only load pickles from your own data folder.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from metamask.errors import DataError


class _PandasStandIn:
    """Records what a pandas object's pickle carried: constructor args and __setstate__ state."""

    kind = "object"
    args: tuple[Any, ...] = ()  # set by __init__ (REDUCE); NEWOBJ skips __init__
    state: Any = None

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stand_in(kind: str) -> type[_PandasStandIn]:
    return type(f"StandIn{kind}", (_PandasStandIn,), {"kind": kind})


_STAND_INS = {
    kind: _stand_in(kind)
    for kind in ("DataFrame", "BlockManager", "Index", "RangeIndex", "StringArray", "StringDtype")
}


class _IndexState:
    def __init__(self, kind: str, data: dict[str, Any]) -> None:
        self.kind, self.data = kind, data


class _BlockState:
    def __init__(self, values: Any, placement: Any, ndim: Any = 2) -> None:
        self.values, self.placement = values, placement


def _new_index(cls: type[_PandasStandIn], data: dict[str, Any]) -> _IndexState:
    return _IndexState(cls.kind, data)


def _unpickle_ndarray_backed(cls: type[_PandasStandIn], checksum: int, state: Any) -> Any:
    obj = cls()
    obj.state = state
    return obj


def _numpy_global(module: str, name: str) -> Any:
    import numpy._core.multiarray as multiarray
    import numpy._core.numeric as numeric

    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar}.get(
        name, getattr(numeric, "_frombuffer", None) if name == "_frombuffer" else None
    )


_NUMPY_MODULES = (
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core.numeric",
    "numpy._core.numeric",
)
_BUILTINS = {"slice": slice, "set": set, "frozenset": frozenset, "complex": complex}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module in _NUMPY_MODULES and name in ("_reconstruct", "scalar", "_frombuffer"):
            found = _numpy_global(module, name)
            if found is not None:
                return found
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if (module, name) == ("_codecs", "encode"):  # bytes in protocol-2 pickles written by py3
            return codecs.encode
        if module.split(".")[0] == "pandas":
            if name in _STAND_INS:
                return _STAND_INS[name]
            if name == "_new_Index":
                return _new_index
            if name in ("_unpickle_block", "new_block"):
                return _BlockState
            if name == "__pyx_unpickle_NDArrayBacked":
                return _unpickle_ndarray_backed
        raise DataError(
            f"refusing to unpickle {module}.{name}: not a numpy array or pandas DataFrame part"
        )


#: bytes a pickle can start with: PROTO (protocols 2 and up) or an opcode protocols 0 / 1 open with
_PICKLE_STARTS = b"\x80(]})NcIFLSVX"


def pickle_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a pickle, from its first byte (cheap), or None."""
    try:
        with path.open("rb") as handle:
            first = handle.read(1)
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    if not first:
        return "empty file"
    return None if first in _PICKLE_STARTS else "not a pickle (its first byte is not one)"


def restricted_load(path: Path, encoding: str = "ASCII") -> Any:
    """Unpickle ``path`` with the whitelist above; DataError on anything else.

    Args:
        encoding: for Python 2 pickles (CIFAR-10's batches need ``"latin1"``).
    """
    if not path.is_file():
        raise DataError(f"file {path} does not exist")
    try:
        with path.open("rb") as handle:
            return _RestrictedUnpickler(handle, encoding=encoding).load()
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        OverflowError,
    ) as exc:
        raise DataError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None


def _index_values(index: Any, path: Path) -> list[Any]:
    if isinstance(index, _IndexState):
        d = index.data
        if index.kind == "RangeIndex":
            return list(range(d.get("start", 0), d["stop"], d.get("step", 1)))
        return list(_array_values(d["data"], path))
    if isinstance(index, np.ndarray):
        return list(index)
    raise DataError(f"{path}: unexpected DataFrame axis {type(index).__name__}")


def _array_values(values: Any, path: Path) -> np.ndarray:
    """A block's values as an ndarray (pandas 3 stores strings as a StringArray)."""
    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, _PandasStandIn) and values.kind == "StringArray":
        state = values.state
        candidates = state if isinstance(state, tuple) else (state,)
        for item in candidates:
            if isinstance(item, np.ndarray):
                return item
    raise DataError(
        f"{path}: a DataFrame column is stored as {type(values).__name__}, which metamask "
        "cannot read without pandas; re-save it with plain numpy / object columns"
    )


def frame_columns(obj: Any, path: Path) -> dict[str, np.ndarray]:
    """The columns of an unpickled DataFrame stand-in: name -> 1-D array (object or numeric)."""
    if not (isinstance(obj, _PandasStandIn) and obj.kind == "DataFrame"):
        raise DataError(f"{path}: expected a pickled pandas DataFrame, got {type(obj).__name__}")
    state = obj.state if isinstance(obj.state, dict) else {}
    manager = state.get("_mgr", state.get("_data"))
    if not (isinstance(manager, _PandasStandIn) and manager.kind == "BlockManager"):
        raise DataError(f"{path}: DataFrame pickle without a BlockManager (unknown pandas format)")
    try:
        if getattr(manager, "args", ()):  # pandas >= 1.3: BlockManager(blocks, axes)
            blocks, axes = manager.args[0], manager.args[1]
        elif isinstance(manager.state, tuple):  # older: (axes, values, items, {"0.14.1": ...})
            axes, blocks = manager.state[0], manager.state[3]["0.14.1"]["blocks"]
        else:
            raise KeyError
    except (KeyError, IndexError, TypeError):
        raise DataError(f"{path}: unknown pandas BlockManager format") from None
    names = _index_values(axes[0], path)
    n_rows = len(_index_values(axes[1], path))
    columns: dict[str, np.ndarray] = {}
    for block in blocks:
        if isinstance(block, _BlockState):
            values, locs = block.values, block.placement
        else:
            values, locs = block["values"], block["mgr_locs"]
        array = _array_values(values, path)
        if isinstance(locs, slice):
            locs = range(*locs.indices(len(names)))
        rows = array.reshape(-1, n_rows) if array.ndim != 1 else array[None]
        for k, loc in enumerate(np.asarray(list(locs)).tolist()):
            columns[str(names[loc])] = rows[k]
    return columns


def read_pickled_frame(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Columns of a pickled DataFrame; DataError when a required column is absent."""
    columns = frame_columns(restricted_load(path), path)
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {sorted(columns)}")
    return columns
