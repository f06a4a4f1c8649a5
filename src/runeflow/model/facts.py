"""Facts: the values that flow through a workflow, with their identity and ancestry.

Facts are values: treat them as immutable (they are plain slotted dataclasses for speed).

A fact's id is derived from what produced it (the runnable's id, itself derived from the
component's content hash and the input facts' ids) plus its position among that runnable's
outputs. Two equal values fanned out from one parent are therefore two distinct facts, and
replaying a log rebuilds the very same ids.

A fact's *scope* says which input it descends from and, inside a ``map``, which element:
``(root_input_id, (map_name, fan_out_fact_id, index, count), ...)``. Joins pair facts of
the same scope; reduces gather the elements of one fan-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = ["ROOT", "Fact", "FactRef", "FanOutTag", "Scope", "Signal"]

ROOT = "root"
"""The name of the implicit root node that receives workflow inputs."""

FanOutTag: TypeAlias = tuple[str, str, int, int]
"""``(map_name, fan_out_fact_id, index, count)``: one level of ``map`` nesting."""

Scope: TypeAlias = tuple[Any, ...]
"""``(root_input_id, *FanOutTag)``."""


@dataclass(slots=True)
class Fact:
    """A value produced in a workflow, with its identity and ancestry."""

    id: str
    """Unique per production; stable across replays of the same log."""
    value: Any
    """The produced value."""
    component: str
    """Name of the producing component (``"root"`` for workflow inputs)."""
    producer: str
    """Content hash of the producing component (``"root"`` for inputs)."""
    parents: tuple[str, ...]
    """Ids of the facts the producer consumed (empty for inputs)."""
    scope: Scope
    """Which input, and which fan-out elements, this fact belongs to."""

    @property
    def parent(self) -> str | None:
        """The first parent fact id, or ``None`` for an input."""
        return self.parents[0] if self.parents else None

    @property
    def ancestry(self) -> tuple[str, str | None]:
        """``(producer_hash, parent_fact_id)``."""
        return (self.producer, self.parent)

    def ref(self) -> FactRef:
        """Return this fact's metadata without its value."""
        return FactRef(
            id=self.id,
            component=self.component,
            producer=self.producer,
            parents=self.parents,
            scope=self.scope,
        )


@dataclass(slots=True)
class FactRef:
    """A fact whose value is kept in a store and loaded only when needed."""

    id: str
    """The fact's id (the key for ``Store.load_fact``)."""
    component: str
    """Name of the producing component."""
    producer: str
    """Content hash of the producing component."""
    parents: tuple[str, ...]
    """Ids of the facts the producer consumed."""
    scope: Scope
    """Which input, and which fan-out elements, this fact belongs to."""

    def with_value(self, value: Any) -> Fact:
        """Return the full fact once its value is known."""
        return Fact(
            id=self.id,
            value=value,
            component=self.component,
            producer=self.producer,
            parents=self.parents,
            scope=self.scope,
        )


@dataclass(frozen=True, slots=True)
class Signal:
    """The value an ``await_event`` step produces when it is resumed.

    Downstream steps and rules branch on it, for example
    ``rf.rule(condition=lambda s: s.event == "approved", reaction=...)``.
    """

    event: str
    """The event's name (``"timeout"`` when a timer fired)."""
    payload: Any = None
    """Data sent with the event, if any."""
    step: str = ""
    """The name of the waiting step that received it."""
    input: Any = None
    """The value the step was waiting with (its input fact's value)."""

    @property
    def timed_out(self) -> bool:
        """True when the wait ended because its timer fired."""
        return self.event == "timeout"
