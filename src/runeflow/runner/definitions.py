"""The definitions a runner may run, and the rule that store contents never name code.

A runner rebuilds an instance from the definition registered under the instance's workflow
name (``Runner(workflows=[...])``, :meth:`Runner.register`, ``runeflow worker --workflows``).
An instance also records the import path it was started from (``"pkg.flows:build"``), but
that path is store content, and anyone who can write to the store could point it anywhere:
a runner imports it only when its module was explicitly trusted
(``Runner(trusted_modules=["pkg"])``). Anything else is refused with
:class:`UntrustedDefinitionError`, and the instance is left as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from runeflow.errors import UntrustedDefinitionError, UsageError
from runeflow.model.workflow import Workflow, load_definition

__all__ = ["Definitions", "UntrustedDefinitionError", "module_of"]


def module_of(path: str) -> str:
    """The module (or file) part of ``"module:attr"``."""
    return path.rpartition(":")[0] or path


class Definitions:
    """Definitions by workflow name, plus the modules whose stored paths may be imported.

    Args:
        trusted_modules: module names (a package trusts its submodules) or file paths whose
            import paths, when recorded with an instance, may be imported. ``"*"`` trusts
            every recorded path: only for a store no one else can write to.
    """

    def __init__(self, trusted_modules: Iterable[str] = ()) -> None:
        if isinstance(trusted_modules, str):
            trusted_modules = [trusted_modules]
        trusted = tuple(trusted_modules)
        for entry in trusted:
            if not isinstance(entry, str) or not entry.strip():
                raise UsageError(
                    f"trusted_modules entries must be module names or file paths, not {entry!r}"
                )
        self.trusted = trusted
        self._by_name: dict[str, Workflow] = {}
        self._lock = threading.RLock()

    def register(self, definition: Workflow | Callable[[], Workflow] | str) -> Workflow:
        """Load ``definition`` (given by the user, so any import path is fine) and keep it."""
        wf = load_definition(definition).validate()
        with self._lock:
            self._by_name[wf.name] = wf
        return wf

    def get(self, name: str) -> Workflow | None:
        """The definition registered under ``name``."""
        with self._lock:
            return self._by_name.get(name)

    def setdefault(self, wf: Workflow) -> None:
        """Keep ``wf`` under its name unless one is registered already."""
        with self._lock:
            self._by_name.setdefault(wf.name, wf)

    def is_trusted(self, path: str) -> bool:
        """Whether a recorded import path may be imported."""
        module = module_of(path)
        for entry in self.trusted:
            if entry == "*" or entry == module:
                return True
            if module.startswith(entry + ".") and "/" not in module and not module.endswith(".py"):
                return True
        return False

    def for_instance(self, name: str, metadata: dict[str, Any]) -> Workflow:
        """The definition to rebuild an instance of workflow ``name`` with.

        Raises:
            UntrustedDefinitionError: none is registered and the recorded path is not trusted.
            WorkflowDefinitionError: the trusted path cannot be loaded.
        """
        wf = self.get(name)
        if wf is not None:
            return wf
        raw = metadata.get("definition") if isinstance(metadata, dict) else None
        path = raw if isinstance(raw, str) and raw else None
        if path is None or not self.is_trusted(path):
            raise UntrustedDefinitionError(name, path)
        loaded = load_definition(path).validate()
        if loaded.name != name:
            raise UntrustedDefinitionError(name, path)
        self.setdefault(loaded)
        return loaded
