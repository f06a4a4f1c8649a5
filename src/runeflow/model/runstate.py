"""The records a workflow instance's run state is made of.

Activations about to run, open waits, join buffers and fan-ins, and the compact records
the live event log keeps for its two most frequent events. The workflow
(:mod:`runeflow.model.workflow`) owns them; :mod:`runeflow.model.folding` changes them and
:mod:`runeflow.model.snapshot` writes them out and reads them back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, overload

from runeflow.model import events as ev
from runeflow.model.components import _MISSING, AwaitEvent, Component
from runeflow.model.facts import ROOT, Fact, FactRef, Scope

__all__ = ["Activation", "EventBatch", "Wait"]


class Activation:
    """A component about to run on some input facts (internal bookkeeping)."""

    __slots__ = ("component", "element", "facts", "id", "scope")

    def __init__(
        self,
        id: str,
        component: Component,
        facts: tuple[Fact | FactRef, ...],
        scope: Scope,
        element: Any = _MISSING,
    ) -> None:
        self.id = id
        self.component = component
        self.facts = facts
        self.scope = scope
        self.element = element


class Wait:
    """An open wait of an ``await_event`` step."""

    __slots__ = ("component", "events", "fact", "id", "timeout")

    def __init__(self, id: str, component: AwaitEvent, fact: Fact | FactRef) -> None:
        self.id = id
        """Identifies the wait."""
        self.component = component.name
        """The waiting step."""
        self.events = component.events
        """Events it accepts."""
        self.timeout = component.timeout
        """Seconds until ``timeout`` is delivered, if set."""
        self.fact = fact
        """The fact it waits with."""

    def __repr__(self) -> str:
        return f"<Wait {self.component} {self.events} #{self.id[:8]}>"


class _JoinBuffer:
    """Facts waiting at a join for one scope: a FIFO per parent."""

    __slots__ = ("buffers", "empty")

    def __init__(self, n: int) -> None:
        self.buffers: list[deque[Fact | FactRef]] = [deque() for _ in range(n)]
        self.empty = n

    def pop(self) -> tuple[Fact | FactRef, ...]:
        facts = tuple(b.popleft() for b in self.buffers)
        self.empty = sum(1 for b in self.buffers if not b)
        return facts


class _FanIn:
    __slots__ = ("count", "dropped", "failed", "received")

    def __init__(self, count: int) -> None:
        self.count = count
        self.received: dict[int, Fact | FactRef] = {}
        self.dropped: set[int] = set()
        self.failed = False


# The live log keeps the two most frequent records compactly: a fact stands for its
# FactProduced event, and a tuple of atomic values for a dispatch or a completion. CPython's
# collector stops tracking such tuples, which keeps collections cheap on long runs.
_DISPATCHED = 0
_COMPLETED = 1


def _expand(record: Any) -> ev.Event:
    """Turn a compact log record back into its event."""
    t = type(record)
    if t is tuple:
        if record[0] == _DISPATCHED:
            return ev.RunnableDispatched(record[1], record[2], record[3])
        return ev.RunnableCompleted(record[1], record[2], record[3])
    if t is Fact or t is FactRef:
        return ev.FactProduced(record, None if record.component == ROOT else record.id)
    return record  # type: ignore[no-any-return]


class EventBatch(Sequence[ev.Event]):
    """The events a checkpoint writes, as a sequence whose events are made on first read.

    It holds the build events (``head``, the first time only) and the live log's compact
    records; a store that can keep the records as they are (the memory store) never
    expands them, the others read it like a list.
    """

    __slots__ = ("_events", "head", "records")

    def __init__(self, head: tuple[ev.Event, ...], records: tuple[Any, ...]) -> None:
        self.head = head
        """Build events first written with this batch (empty but for the first)."""
        self.records = records
        """Compact records of the live log (see :func:`_expand`)."""
        self._events: list[ev.Event] | None = None

    def events(self) -> list[ev.Event]:
        """The events, made from the records the first time."""
        if self._events is None:
            self._events = [*self.head, *map(_expand, self.records)]
        return self._events

    def __len__(self) -> int:
        return len(self.head) + len(self.records)

    @overload
    def __getitem__(self, index: int) -> ev.Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[ev.Event]: ...

    def __getitem__(self, index: int | slice) -> ev.Event | list[ev.Event]:
        return self.events()[index]

    def __iter__(self) -> Iterator[ev.Event]:
        return iter(self.events())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EventBatch):
            return self.events() == other.events()
        return self.events() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EventBatch({self.events()!r})"
