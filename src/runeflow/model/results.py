"""Reading a workflow's results: productions, output ports, facts, failures, state.

:class:`Results` is mixed into :class:`~runeflow.model.workflow.Workflow`. Productions are
kept in order and, once asked for by component, in an index kept up to date as facts
arrive, so reading one component's values never scans every fact again.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runeflow.errors import WorkflowDefinitionError
from runeflow.model import events as ev
from runeflow.model.components import _MISSING, Accumulator, Component
from runeflow.model.facts import ROOT, Fact, FactRef
from runeflow.model.stateful import Composite

if TYPE_CHECKING:
    from runeflow.model.graph import Graph
    from runeflow.model.runstate import Activation, Wait

__all__ = ["ComponentRef", "Results"]

ComponentRef = str | Component
"""A component, or its name."""


class Results:
    """Productions, output ports, facts, failures and states (mixed into ``Workflow``)."""

    if TYPE_CHECKING:
        _g: Graph
        _facts: dict[str, Fact | FactRef]
        _index: dict[str, list[Fact | FactRef]] | None
        _input_facts: list[Fact | FactRef]
        _produced: list[Fact | FactRef]
        _pending: dict[str, Activation]
        _matches: dict[str, Activation]
        _in_flight: dict[str, Activation]
        _acc_state: dict[str, Any]
        _waits: dict[str, Wait]
        _timers: dict[str, ev.TimerScheduled]
        _failures: dict[str, ev.RunnableFailed]
        _annotations: dict[str, dict[str, Any]]
        step_count: int

        @property
        def name(self) -> str:
            """The workflow's name (``Workflow.name``)."""

        def _value(self, fact: Fact | FactRef) -> Any: ...

    def raw_productions(self, component: ComponentRef | None = None) -> list[Any]:
        """Values produced (inputs excluded), in order; only ``component``'s if given."""
        facts = self.productions(component)
        return [self._value(f) for f in facts]

    def productions(self, component: ComponentRef | None = None) -> list[Fact | FactRef]:
        """Facts produced (inputs excluded), in order; only ``component``'s if given."""
        if component is None:
            return list(self._produced)
        return list(self._by_component().get(self._known(component), ()))

    def _by_component(self) -> dict[str, list[Fact | FactRef]]:
        """Productions grouped by component; built on first use, then kept up to date."""
        if self._index is None:
            index: dict[str, list[Fact | FactRef]] = {}
            for fact in self._produced:
                index.setdefault(fact.component, []).append(fact)
            self._index = index
        return self._index

    def productions_by_component(self) -> dict[str, list[Any]]:
        """Produced values grouped by component name."""
        return {
            name: [self._value(f) for f in facts] for name, facts in self._by_component().items()
        }

    def inputs(self) -> list[Any]:
        """Input values fed so far."""
        return [self._value(f) for f in self._input_facts]

    def results(
        self,
        components: Sequence[ComponentRef] | None = None,
        *,
        facts: bool = False,
        all: bool = False,
    ) -> dict[str, Any]:
        """Results by name.

        Args:
            components: component names to report; by default the workflow's output ports
                (``outputs={"total": "price"}``), or its sink components if it has none.
            facts: return :class:`Fact` objects instead of values.
            all: return every production as a list instead of the last one (or ``None``).
        """
        if components is None:
            ports = self._g.outputs or {n: n for n in self._g.sinks()}
        else:
            ports = {(n := _name_of(c)): n for c in components}
        out: dict[str, Any] = {}
        for port, name in ports.items():
            produced = self._by_component().get(self._known(name), [])
            items: list[Any] = (
                [self._full(f) for f in produced] if facts else [self._value(f) for f in produced]
            )
            out[port] = items if all else (items[-1] if items else None)
        return out

    def _full(self, fact: Fact | FactRef) -> Fact:
        self._value(fact)
        full = self._facts[fact.id]
        assert isinstance(full, Fact)
        return full

    def _known(self, component: ComponentRef) -> str:
        name = _name_of(component)
        if name != ROOT and name not in self._g.components:
            raise WorkflowDefinitionError(
                f"workflow {self.name!r} has no component {name!r} "
                f"(components: {', '.join(self._g.components)})",
                component=name,
            )
        return name

    def fact(self, fact_id: str) -> Fact | FactRef:
        """The fact with ``fact_id`` (``KeyError`` if unknown)."""
        return self._facts[fact_id]

    def facts(self) -> Mapping[str, Fact | FactRef]:
        """Every fact by id, inputs included (read-only view)."""
        return types.MappingProxyType(self._facts)

    def failures(self) -> list[ev.RunnableFailed]:
        """Final failures, in order."""
        return list(self._failures.values())

    def state_of(self, component: ComponentRef) -> Any:
        """Current state of an accumulator, a state machine or a state-based component.

        Before its first input this is its initial state (computed, not recorded: an
        ``init`` function is called each time); ``None`` for a component that keeps none.
        """
        name = self._known(component)
        value = self._acc_state.get(name, _MISSING)
        if type(value) is FactRef:
            value = self._acc_state[name] = self._value(value)
        elif value is _MISSING:
            comp = self._g.components.get(name)
            return comp.initial_state() if isinstance(comp, Accumulator) else None
        return value

    def annotations(self, runnable_id: str) -> dict[str, Any]:
        """What the ``before``/``after`` hooks of a runnable's component returned, merged."""
        return dict(self._annotations.get(runnable_id, {}))

    def counts(self) -> dict[str, int]:
        """Sizes of the run state (facts, pending, in flight, waits, timers, failures)."""
        return {
            "facts": len(self._facts),
            "pending": len(self._pending) + len(self._matches),
            "in_flight": len(self._in_flight),
            "waits": len(self._waits),
            "timers": len(self._timers),
            "failures": len(self._failures),
            "steps": self.step_count,
        }


def _name_of(ref: Any) -> str:
    if isinstance(ref, Component | Composite):
        return ref.name
    if isinstance(ref, str):
        return ref
    raise WorkflowDefinitionError(f"expected a component or its name, got {type(ref).__name__}")
