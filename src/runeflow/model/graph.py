"""A workflow's structure: components, edges, hashes, and the build events that made it.

The structure is shared between a workflow and every ``fresh()`` copy of it; the first
``add`` on a shared structure copies it (copy-on-write), so instances never see each
other's changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runeflow.errors import WorkflowDefinitionError
from runeflow.model.components import AwaitEvent, Component, Map, Reduce, StateMachine
from runeflow.model.events import ComponentAdded, Event, WorkflowCreated
from runeflow.model.facts import ROOT
from runeflow.model.hashing import digest

__all__ = ["Graph"]


class Graph:
    """Components and edges of a workflow (no run state)."""

    __slots__ = (
        "_below",
        "_reduces_below",
        "build_events",
        "children",
        "components",
        "join_index",
        "name",
        "outputs",
        "parents",
        "shared",
    )

    def __init__(self, name: str, outputs: Mapping[str, str] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise WorkflowDefinitionError("a workflow needs a non-empty name=")
        self.name = name
        self.outputs: dict[str, str] = dict(outputs or {})
        self.components: dict[str, Component] = {}
        self.children: dict[str, list[str]] = {ROOT: []}
        self.parents: dict[str, tuple[str, ...]] = {}
        self.join_index: dict[str, dict[str, int]] = {}
        self.build_events: list[Event] = [
            WorkflowCreated(name=name, outputs=tuple(self.outputs.items()))
        ]
        self.shared = False
        self._below: dict[str, frozenset[str]] = {}
        self._reduces_below: dict[str, tuple[Reduce, ...]] = {}

    def copy(self) -> Graph:
        """Return an unshared copy."""
        g = Graph.__new__(Graph)
        g.name = self.name
        g.outputs = dict(self.outputs)
        g.components = dict(self.components)
        g.children = {k: list(v) for k, v in self.children.items()}
        g.parents = dict(self.parents)
        g.join_index = {k: dict(v) for k, v in self.join_index.items()}
        g.build_events = list(self.build_events)
        g.shared = False
        g._below = {}
        g._reduces_below = {}
        return g

    # --- building ---------------------------------------------------------------------------

    def add(self, component: Component, parents: Sequence[str]) -> list[ComponentAdded]:
        """Validate and add ``component`` under ``parents``; return the build events."""
        if not isinstance(component, Component):
            raise WorkflowDefinitionError(
                f"expected a component (rf.step, rf.rule, ...), got {type(component).__name__}"
            )
        component = self._unique(component)
        parents = tuple(parents)
        self._check_parents(component, parents)
        events = [self._insert(component, parents)]
        if isinstance(component, StateMachine):
            for reactor in component.reactors:
                events.extend(self.add(reactor, (component.name,)))
        return events

    def _unique(self, component: Component) -> Component:
        name = component.name
        if name not in self.components:
            return component
        if self.components[name] is component or not component.auto_named:
            raise WorkflowDefinitionError(
                f"duplicate component name {name!r}: each component in a workflow needs a "
                "unique name= (already added: this name is taken)",
                component=name,
            )
        n = 2
        while f"{name}_{n}" in self.components:
            n += 1
        return component.renamed(f"{name}_{n}")

    def _check_parents(self, component: Component, parents: tuple[str, ...]) -> None:
        name = component.name
        if not parents:
            raise WorkflowDefinitionError(f"{name!r} needs at least one parent", component=name)
        if name in parents:
            raise WorkflowDefinitionError(
                f"{name!r} lists itself as a parent, which would make a cycle", component=name
            )
        if len(set(parents)) != len(parents):
            raise WorkflowDefinitionError(
                f"{name!r} lists a parent twice in {list(parents)}", component=name
            )
        for parent in parents:
            if parent != ROOT and parent not in self.components:
                known = ", ".join(sorted(self.components)) or "none yet"
                raise WorkflowDefinitionError(
                    f"unknown parent {parent!r} for {name!r}: add {parent!r} first "
                    f"(known components: {known})",
                    component=name,
                )
        if len(parents) > 1 and (ROOT in parents or not _can_join(component)):
            raise WorkflowDefinitionError(
                f"{component.kind} {name!r} cannot join several parents {list(parents)}: only "
                "steps and rules can, and 'root' cannot be one of them",
                component=name,
            )
        component.check_parents(parents)
        if isinstance(component, Reduce):
            self._check_reduce(component, parents[0])

    def _check_reduce(self, component: Reduce, parent: str) -> None:
        target = self.components.get(component.map_name)
        if not isinstance(target, Map):
            raise WorkflowDefinitionError(
                f"reduce {component.name!r} gathers map {component.map_name!r}, but there is "
                "no map of that name: add the rf.map first and name it",
                component=component.name,
            )
        if parent != component.map_name and parent not in self.below(component.map_name):
            raise WorkflowDefinitionError(
                f"reduce {component.name!r} must be placed under map {component.map_name!r} "
                f"or a step after it, not under {parent!r}",
                component=component.name,
            )

    def _insert(self, component: Component, parents: tuple[str, ...]) -> ComponentAdded:
        name = component.name
        self.components[name] = component
        self.parents[name] = parents
        self.children[name] = []
        for parent in parents:
            self.children[parent].append(name)
        if len(parents) > 1:
            self.join_index[name] = {p: i for i, p in enumerate(parents)}
        if self._below:
            self._below.clear()
            self._reduces_below.clear()
        event = ComponentAdded(
            name=name,
            component_kind=component.kind,
            parents=parents,
            hash=component.hash,
            component=component,
        )
        self.build_events.append(event)
        return event

    def connect(self, parent: str, child: str) -> ComponentAdded:
        """Add an edge between two existing components (the child becomes a join)."""
        for n in (parent, child):
            if n != ROOT and n not in self.components:
                raise WorkflowDefinitionError(f"unknown component {n!r}", component=n)
        if child == ROOT:
            raise WorkflowDefinitionError("'root' cannot have parents", component=child)
        if parent == child or child in (ROOT,) or parent in self.below(child):
            raise WorkflowDefinitionError(
                f"connecting {parent!r} -> {child!r} would make a cycle "
                f"({child!r} already leads to {parent!r}); workflows must be acyclic",
                component=child,
            )
        component = self.components[child]
        parents = (*self.parents[child], parent)
        self._check_parents(component, parents)
        for p in self.parents[child]:
            self.children[p].remove(child)
        del self.components[child]
        self.build_events = [
            e for e in self.build_events if not (isinstance(e, ComponentAdded) and e.name == child)
        ]
        return self._insert(component, parents)

    # --- queries ----------------------------------------------------------------------------

    def below(self, name: str) -> frozenset[str]:
        """Every component reachable from ``name`` (cached)."""
        cached = self._below.get(name)
        if cached is not None:
            return cached
        seen: set[str] = set()
        stack = list(self.children.get(name, ()))
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self.children[n])
        result = frozenset(seen)
        self._below[name] = result
        return result

    def reduces_below(self, name: str) -> tuple[Reduce, ...]:
        """The reduces reachable from ``name`` (cached)."""
        cached = self._reduces_below.get(name)
        if cached is None:
            cached = tuple(
                c for n in self.below(name) if isinstance(c := self.components[n], Reduce)
            )
            self._reduces_below[name] = cached
        return cached

    def sinks(self) -> list[str]:
        """Components without children, in insertion order."""
        return [n for n in self.components if not self.children[n]]

    def edges(self) -> list[tuple[str, str]]:
        """Every ``(parent, child)`` edge, in insertion order."""
        return [(p, n) for n, ps in self.parents.items() for p in ps]

    def definition_hash(self) -> str:
        """A digest of the whole structure: components, their hashes and edges."""
        parts = [self.name]
        for name, comp in self.components.items():
            parts.append(f"{name}:{comp.hash}:{','.join(self.parents[name])}")
        return digest(*parts)

    def waits(self) -> list[AwaitEvent]:
        """The ``await_event`` components."""
        return [c for c in self.components.values() if isinstance(c, AwaitEvent)]

    def describe(self) -> dict[str, Any]:
        """A plain description (for drawing and inspection)."""
        return {
            "name": self.name,
            "components": [
                {"name": n, "kind": c.kind, "parents": list(self.parents[n]), "hash": c.hash}
                for n, c in self.components.items()
            ],
            "outputs": dict(self.outputs),
        }


def _can_join(component: Component) -> bool:
    return component.kind in ("step", "rule")
