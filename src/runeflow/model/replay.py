"""Rebuilding a workflow from its event log, and importing a definition by path.

An in-memory log carries its components; a stored log carries only names, kinds, parents
and hashes, so the code comes from a *definition*: a Workflow, a builder returning one, or
an import path (``Workflow.from_events`` loads it with ``load_definition``, in
:mod:`runeflow.model.workflow`). A component whose hash differs from the log's is refused
with ``DefinitionMismatchError`` unless the caller asks to migrate.

This module sits below :mod:`runeflow.model.workflow` and never imports it: it works on any
:class:`~runeflow.model.folding.Folding` (the workflow's run state), given the class to
build.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from runeflow.errors import DefinitionMismatchError, WorkflowDefinitionError
from runeflow.model import events as ev
from runeflow.model.components import Component
from runeflow.model.folding import Folding
from runeflow.model.graph import Graph

__all__ = ["load_object", "rebuild"]

W = TypeVar("W", bound=Folding)


def load_object(path: str) -> Any:
    """Import ``"package.module:attr"`` or ``"path/to/file.py:attr"`` and return the attr."""
    module_part, sep, attr = path.partition(":")
    if not sep or not module_part or not attr:
        raise WorkflowDefinitionError(
            f"cannot load {path!r}: write it as 'package.module:attribute' or "
            "'path/to/file.py:attribute'"
        )
    if module_part.endswith(".py") or "/" in module_part:
        file = Path(module_part)
        if not file.is_file():
            raise WorkflowDefinitionError(f"cannot load {path!r}: no file {module_part!r}")
        mod_name = "_runeflow_user_" + file.stem
        spec = importlib.util.spec_from_file_location(mod_name, file)
        if spec is None or spec.loader is None:
            raise WorkflowDefinitionError(f"cannot load {path!r}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise WorkflowDefinitionError(f"cannot import {module_part!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise WorkflowDefinitionError(
                f"cannot load {path!r}: {module_part!r} has no attribute {attr!r}"
            ) from None
    return obj


def rebuild(
    cls: Callable[[str, Mapping[str, str]], W],
    events: Iterable[ev.Event],
    defn: Folding | None,
    *,
    migrate: bool,
) -> W:
    """Fold ``events`` into a new workflow of class ``cls`` (see ``Workflow.from_events``),
    the code coming from the loaded definition ``defn`` when the log holds none."""
    it = iter(events)
    first = next(it, None)
    if not isinstance(first, ev.WorkflowCreated):
        raise WorkflowDefinitionError(
            "an event log must start with a workflow_created event; "
            f"this one starts with {getattr(first, 'kind', first)!r}"
        )
    if defn is not None and defn.name != first.name:
        raise DefinitionMismatchError(
            f"the log is of workflow {first.name!r} but the definition is {defn.name!r}",
            component=first.name,
        )
    wf = cls(first.name, dict(first.outputs))
    build: list[ev.ComponentAdded] = []
    event: Any = None
    for event in it:
        if not isinstance(event, ev.ComponentAdded):
            break
        build.append(event)
    else:
        event = None
    wf._g = _graph_for(first, build, defn, migrate)
    wf._build_committed = len(wf._g.build_events())
    if event is not None:
        _fold_all(wf, event, it, defn, migrate)
    return wf


def _fold_all(
    wf: Folding, first: Any, rest: Iterable[ev.Event], defn: Folding | None, migrate: bool
) -> None:
    fold = type(wf)._FOLD
    wf._replaying = True
    events = wf._events
    try:
        for event in _chain(first, rest):
            events.append(event)
            kind = event.kind
            if kind == "component_added":
                comp = _component_for(event, defn, migrate)  # type: ignore[arg-type]
                wf._own_graph()
                wf._g._insert(comp, event.parents)  # type: ignore[union-attr]
                continue
            handler = fold.get(kind)
            if handler is None:
                raise WorkflowDefinitionError(
                    f"unknown event kind {kind!r} in the log: it may have been written by a "
                    "newer runeflow"
                )
            handler(wf, event)
    finally:
        wf._replaying = False
    wf._committed = len(events)


def _chain(first: ev.Event, rest: Iterable[ev.Event]) -> Iterable[ev.Event]:
    yield first
    yield from rest


def _graph_for(
    created: ev.WorkflowCreated,
    build: list[ev.ComponentAdded],
    defn: Folding | None,
    migrate: bool,
) -> Graph:
    if defn is not None and _same_build(build, defn.graph):
        defn.graph.shared = True
        return defn.graph
    graph = Graph(created.name, dict(created.outputs), defn.graph.policies if defn else None)
    for event in build:
        graph._insert(_component_for(event, defn, migrate), event.parents)
    return graph


def _same_build(build: list[ev.ComponentAdded], graph: Graph) -> bool:
    theirs = [e for e in graph.build_events() if isinstance(e, ev.ComponentAdded)]
    if len(theirs) != len(build):
        return False
    return all(
        a.name == b.name and a.hash == b.hash and a.parents == b.parents
        for a, b in zip(build, theirs, strict=True)
    )


def _component_for(event: ev.ComponentAdded, defn: Folding | None, migrate: bool) -> Component:
    if event.component is not None and defn is None:
        return event.component
    if defn is None:
        raise DefinitionMismatchError(
            f"the log stores no code for component {event.name!r}: pass definition= "
            "(the Workflow, a function building it, or 'package.module:attribute')",
            component=event.name,
            stored_hash=event.hash,
        )
    comp = defn.graph.components.get(event.name)
    if comp is None:
        raise DefinitionMismatchError(
            f"component {event.name!r} is in the stored log but not in the definition of "
            f"{defn.name!r}: restore it, or recover with the definition it was started with",
            component=event.name,
            stored_hash=event.hash,
        )
    if comp.hash != event.hash and migrate:
        # New code under the stored identity, so ids already in the log still line up.
        migrated = copy.copy(comp)
        migrated.hash = event.hash
        return migrated
    if comp.hash != event.hash:
        raise DefinitionMismatchError(
            f"component {event.name!r} changed since the instance was stored (stored hash "
            f"{event.hash[:12]}, current {comp.hash[:12]}): restore the old code, or recover "
            "with migrate=True to continue with the new code",
            component=event.name,
            stored_hash=event.hash,
            current_hash=comp.hash,
        )
    return comp
