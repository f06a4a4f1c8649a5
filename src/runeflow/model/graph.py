"""A workflow's structure: components, edges, hashes, and the build events that made it.

The structure is shared between a workflow and every ``fresh()`` copy of it; the first
``add`` on a shared structure copies it (copy-on-write), so instances never see each
other's changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runeflow.errors import WorkflowDefinitionError
from runeflow.model.components import (
    Accumulator,
    AwaitEvent,
    Component,
    Map,
    Reduce,
    Rule,
    StateMachine,
    Step,
)
from runeflow.model.events import ComponentAdded, Event, WorkflowCreated
from runeflow.model.facts import ROOT
from runeflow.model.hashing import digest
from runeflow.model.policy import Policies

__all__ = ["Graph"]


class Graph:
    """Components and edges of a workflow (no run state)."""

    __slots__ = (
        "_below",
        "_build_cache",
        "_definition_hash",
        "_reduces_below",
        "_reordered",
        "children",
        "components",
        "hooked",
        "join_index",
        "name",
        "outputs",
        "outputs_checked",
        "parents",
        "policies",
        "policy_free",
        "readers",
        "shared",
        "stateful",
    )

    def __init__(
        self,
        name: str,
        outputs: Mapping[str, str] | None = None,
        policies: Policies | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise WorkflowDefinitionError("a workflow needs a non-empty name=")
        self.name = name
        if outputs is not None and not isinstance(outputs, Mapping):
            raise WorkflowDefinitionError(
                f"outputs= must be a dict {{port: component name}}, not {type(outputs).__name__}"
            )
        self.outputs: dict[str, str] = dict(outputs or {})
        self.outputs_checked = not self.outputs
        self.policies = policies
        self.policy_free: bool | None = None
        """Cached: no component and no table here sets a policy (``None``: not known yet)."""
        self.components: dict[str, Component] = {}
        self.children: dict[str, list[str]] = {ROOT: []}
        self.parents: dict[str, tuple[str, ...]] = {}
        self.join_index: dict[str, dict[str, int]] = {}
        self.stateful: set[str] = set()
        self.hooked: set[str] = set()
        """Components with ``before``/``after`` hooks."""
        self.readers: dict[str, list[str]] = {}
        """Component name -> the rules whose conditions read it (meta-conditions)."""
        self._build_cache: tuple[Event, ...] | None = None
        self._definition_hash: str | None = None
        self._reordered = False
        self.shared = False
        self._below: dict[str, frozenset[str]] = {}
        self._reduces_below: dict[str, tuple[Reduce, ...]] = {}

    def copy(self) -> Graph:
        """Return an unshared copy."""
        g = Graph.__new__(Graph)
        g.name = self.name
        g.outputs = dict(self.outputs)
        g.outputs_checked = self.outputs_checked
        g.policies = self.policies
        g.policy_free = None
        g.components = dict(self.components)
        g.children = {k: list(v) for k, v in self.children.items()}
        g.parents = dict(self.parents)
        g.join_index = {k: dict(v) for k, v in self.join_index.items()}
        g.stateful = set(self.stateful)
        g.hooked = set(self.hooked)
        g.readers = {k: list(v) for k, v in self.readers.items()}
        g._build_cache = None
        g._definition_hash = None
        g._reordered = self._reordered
        g.shared = False
        g._below = {}
        g._reduces_below = {}
        return g

    # --- building ---------------------------------------------------------------------------

    def add(self, component: Component, parents: tuple[str, ...]) -> list[str]:
        """Validate and add ``component`` under ``parents``; return the names added."""
        if not isinstance(component, Component):
            raise WorkflowDefinitionError(
                f"expected a component (rf.step, rf.rule, ...), got {type(component).__name__}"
            )
        if component.name in self.components:
            component = self._unique(component)
        if len(parents) == 1 and parents[0] in self.children and type(component) in _SIMPLE:
            if parents[0] == component.name:
                self._check_parents(component, parents)  # raises: a cycle
        else:
            self._check_parents(component, parents)
        if type(component) is Rule and component.condition_spec.context:
            self._check_reads(component)
        self._insert(component, parents)
        added = [component.name]
        if isinstance(component, StateMachine):
            for reactor in component.reactors:
                added.extend(self.add(reactor, (component.name,)))
        return added

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

    def _check_reads(self, rule: Rule) -> None:
        for marker in rule.meta_reads():
            target = marker.target
            comp = self.components.get(target)
            if comp is None:
                known = ", ".join(sorted(self.components)) or "none yet"
                raise WorkflowDefinitionError(
                    f"the condition of rule {rule.name!r} reads {marker!r}, but there is no "
                    f"component {target!r}: add it before the rule (known components: {known})",
                    component=rule.name,
                )
            if marker.kind == "state_of" and not isinstance(comp, Accumulator):
                raise WorkflowDefinitionError(
                    f"the condition of rule {rule.name!r} reads {marker!r}, but {target!r} is a "
                    f"{comp.kind}, which keeps no state: rf.state_of() reads accumulators, "
                    "state machines and state-based components (use rf.step_ran or "
                    "rf.fact_count for other components)",
                    component=rule.name,
                )

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

    def _insert(self, component: Component, parents: tuple[str, ...]) -> None:
        name = component.name
        self.policy_free = None
        self.components[name] = component
        self.parents[name] = parents
        self.children[name] = []
        for parent in parents:
            self.children[parent].append(name)
        if len(parents) > 1:
            self.join_index[name] = {p: i for i, p in enumerate(parents)}
        if isinstance(component, Accumulator):
            self.stateful.add(name)
        if component.before is not None or component.after is not None:
            self.hooked.add(name)
        if type(component) is Rule and component.condition_spec.context:
            for marker in component.meta_reads():
                self.readers.setdefault(marker.target, []).append(name)
        if self._below:
            self._below.clear()
            self._reduces_below.clear()
        self._build_cache = None
        self._definition_hash = None

    def component_added(self, name: str) -> ComponentAdded:
        """The build event describing component ``name`` as it stands."""
        comp = self.components[name]
        reads = tuple(m.key for m in comp.meta_reads())
        return ComponentAdded(name, comp.kind, self.parents[name], comp.hash, comp, reads)

    def build_events(self) -> tuple[Event, ...]:
        """``WorkflowCreated`` then one ``ComponentAdded`` per component, parents first (one
        tuple per graph, shared by every instance's first checkpoint)."""
        if self._build_cache is None:
            names = self._topological() if self._reordered else list(self.components)
            self._build_cache = (
                WorkflowCreated(self.name, tuple(self.outputs.items())),
                *(self.component_added(n) for n in names),
            )
        return self._build_cache

    def _topological(self) -> list[str]:
        order: list[str] = []
        placed = {ROOT}
        remaining = list(self.components)
        while remaining:
            rest = []
            for n in remaining:
                if all(p in placed for p in self.parents[n]):
                    order.append(n)
                    placed.add(n)
                else:
                    rest.append(n)
            remaining = rest
        return order

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
        self.parents[child] = parents
        self.children[parent].append(child)
        self.join_index[child] = {p: i for i, p in enumerate(parents)}
        self._below.clear()
        self._reduces_below.clear()
        self._build_cache = None
        self._definition_hash = None
        self._reordered = True
        return self.component_added(child)

    def remove(self, name: str) -> None:
        """Take component ``name`` out, with its edges (``wf.remove`` checks it may go)."""
        comp = self.components.pop(name)
        for parent in self.parents.pop(name):
            self.children[parent].remove(name)
        del self.children[name]
        self.join_index.pop(name, None)
        self.stateful.discard(name)
        self.hooked.discard(name)
        for marker in comp.meta_reads():
            readers = self.readers[marker.target]
            readers.remove(name)
            if not readers:
                del self.readers[marker.target]
        self.policy_free = None
        self._below.clear()
        self._reduces_below.clear()
        self._build_cache = None
        self._definition_hash = None

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

    def is_policy_free(self) -> bool:
        """True when neither the workflow nor any component declares a policy (cached)."""
        free = self.policy_free
        if free is None:
            free = self.policies is None and all(c.policy is None for c in self.components.values())
            self.policy_free = free
        return free

    def check_outputs(self) -> None:
        """Raise ``WorkflowDefinitionError`` unless every output port names a component."""
        if self.outputs_checked:
            return
        for port, name in self.outputs.items():
            if not isinstance(port, str) or not port:
                raise WorkflowDefinitionError(
                    f"output port names must be non-empty strings, got {port!r}"
                )
            if name not in self.components:
                known = ", ".join(repr(n) for n in self.components) or "none yet"
                raise WorkflowDefinitionError(
                    f"output port {port!r} of workflow {self.name!r} names {name!r}, which is "
                    f"not one of its components ({known}): fix outputs=",
                    component=name if isinstance(name, str) else None,
                )
        self.outputs_checked = True  # remove() refuses a component an output port names

    def sinks(self) -> list[str]:
        """Components without children, in insertion order."""
        return [n for n in self.components if not self.children[n]]

    def edges(self) -> list[tuple[str, str]]:
        """Every ``(parent, child)`` edge, in insertion order."""
        return [(p, n) for n, ps in self.parents.items() for p in ps]

    def definition_hash(self) -> str:
        """A digest of the whole structure: components, their hashes and edges (cached)."""
        if self._definition_hash is None:
            parts = [self.name]
            for name, comp in self.components.items():
                parts.append(f"{name}:{comp.hash}:{','.join(self.parents[name])}")
            self._definition_hash = digest(*parts)
        return self._definition_hash

    def waits(self) -> list[AwaitEvent]:
        """The ``await_event`` components."""
        return [c for c in self.components.values() if isinstance(c, AwaitEvent)]

    def describe(self) -> dict[str, Any]:
        """A plain description (for drawing and inspection)."""
        return {
            "name": self.name,
            "components": [
                {
                    "name": n,
                    "kind": c.kind,
                    "parents": list(self.parents[n]),
                    "hash": c.hash,
                    "reads": [m.key for m in c.meta_reads()],
                }
                for n, c in self.components.items()
            ],
            "outputs": dict(self.outputs),
        }


_SIMPLE = (Step, Rule)


def _can_join(component: Component) -> bool:
    return component.kind in ("step", "rule")
