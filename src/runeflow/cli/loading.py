"""Loading the user's workflow definitions named on the command line."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runeflow.cli.common import CliError
from runeflow.errors import WorkflowDefinitionError
from runeflow.model.workflow import Workflow, load_definition

__all__ = ["load_target", "load_workflows"]


def load_target(target: str) -> tuple[Workflow, str]:
    """Load ``path/to/file.py:attr`` or ``package.module:attr``.

    Returns:
        The workflow, and the import path to record (a file's path made absolute) so that
        other processes can rebuild instances of it.

    Raises:
        CliError: the target is malformed, or the file, module or attribute cannot be loaded.
    """
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part or not attr:
        raise CliError(
            f"{target!r} names no workflow: write path/to/file.py:ATTR or package.module:ATTR"
        )
    if module_part.endswith(".py") or "/" in module_part or os.sep in module_part:
        file = Path(module_part).resolve()
        if not file.is_file():
            raise CliError(f"cannot load {target!r}: no file {module_part!r}")
        if str(file.parent) not in sys.path:  # so the file can import its neighbours
            sys.path.insert(0, str(file.parent))
        path = f"{file}:{attr}"
    else:
        path = target
    return _load(lambda: load_definition(path), target), path


def load_workflows(spec: str) -> list[Workflow]:
    """The workflows a ``--workflows`` item names: ``MODULE:ATTR``, or every Workflow that the
    module (``package.module`` or ``file.py``) defines at its top level.

    Raises:
        CliError: it cannot be loaded, or it defines no Workflow.
    """
    if ":" in spec:
        return [load_target(spec)[0]]
    if spec.endswith(".py") or "/" in spec:
        file = Path(spec).resolve()
        if not file.is_file():
            raise CliError(f"cannot load {spec!r}: no such file")
        module = _load(lambda: _exec_file(file), spec)
    else:
        module = _load(lambda: importlib.import_module(spec), spec)
    found = {v.name: v for v in vars(module).values() if isinstance(v, Workflow)}
    if not found:
        raise CliError(f"{spec!r} defines no Workflow at top level: name one as {spec}:ATTR")
    return list(found.values())


def _exec_file(file: Path) -> Any:
    """Import a file under the name ``load_object`` gives it, so component hashes agree."""
    if str(file.parent) not in sys.path:
        sys.path.insert(0, str(file.parent))
    name = "_runeflow_user_" + file.stem
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot load {str(file)!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _load(load: Callable[[], Any], what: str) -> Any:
    try:
        return load()
    except WorkflowDefinitionError as exc:
        raise CliError(str(exc)) from exc
    except (CliError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # the user's module failed to import (SyntaxError, SystemExit...)
        raise CliError(f"cannot load {what!r}: {type(exc).__name__}: {exc}") from exc
