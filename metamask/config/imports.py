"""The spec's ``imports:``: Python modules a run imports before its graph is built.

A researcher's own estimator, node type or dataset registers itself when its module is
imported. ``imports: [my_lab.estimators]`` in a spec (or ``--import MODULE`` on ``metamask
run`` / ``show`` / ``eval``, which the run's saved spec then lists) makes every command see it,
and a run folder's ``spec.yaml`` records it, so ``metamask eval RUN`` and ``metamask run
--resume RUN`` import it again. Parsing checks only the names' form (no import: a bad spec is
refused fast and without running user code); :func:`import_modules` imports them when the
graph is built (:meth:`metamask.compose.GraphBuilder.build`).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Sequence

from metamask.config.origins import origin_of
from metamask.config.schema import RunSpec
from metamask.errors import ConfigError

#: a dotted Python module name: ``pkg``, ``pkg.sub_mod``
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def check_module_names(names: Sequence[str], source: str, key: str = "imports") -> None:
    """Refuse an entry of ``imports:`` that is no dotted module name (``my_lab.estimators``),
    in one line naming the file and the key; nothing is imported."""
    for i, name in enumerate(names):
        if not _MODULE.fullmatch(name):
            where = f"{key}[{i}]"
            raise ConfigError(
                f"{origin_of(source, where)}: {where}: {name!r} is not a module name; expected "
                "a dotted Python module name such as my_lab.estimators (no path, no .py)"
            )


def import_modules(names: Sequence[str], source: str, key: str = "imports") -> None:
    """Import each module of ``names`` in order (already imported ones cost nothing).

    Raises:
        ConfigError: a module cannot be imported (not found on ``sys.path``, or it raised while
            importing): one line naming the file, the key and the module, the cause in brackets.
    """
    check_module_names(names, source, key)
    for i, name in enumerate(names):
        where = f"{key}[{i}]"
        import_module(name, f"{origin_of(source, where)}: {where}")


def import_module(name: str, label: str) -> None:
    """Import module ``name``; a failure is one :class:`ConfigError` line starting with
    ``label`` (``run.yaml: imports[0]``, ``--import my_lab``)."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # the user's module: any error it raises while importing
        cause = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise ConfigError(
            f"{label}: cannot import module {name!r} ({cause}); expected a module on the "
            "Python path (PYTHONPATH, or an installed package)"
        ) from exc


def with_imports(spec: RunSpec, names: Sequence[str]) -> RunSpec:
    """``spec`` with the modules of ``--import`` imported now and added to its ``imports``
    (so that the run folder's ``spec.yaml`` lists them for ``eval`` and ``--resume``).

    Raises:
        ConfigError: a name that is no module name, or a module that cannot be imported, in
            one line naming ``--import`` and the module.
    """
    for name in names:
        if not _MODULE.fullmatch(name):
            raise ConfigError(
                f"--import {name}: not a module name; expected a dotted Python module name "
                "such as my_lab.estimators (no path, no .py)"
            )
        import_module(name, f"--import {name}")
    added = [name for name in dict.fromkeys(names) if name not in spec.imports]
    return dataclasses.replace(spec, imports=[*spec.imports, *added])
