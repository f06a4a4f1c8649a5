"""The event log vocabulary.

Every change to a workflow is recorded as one of these dataclasses, each tagged with
a ``kind`` string. Folding a log in order rebuilds the workflow exactly
(``Workflow.from_events``).

Two families:

* **state events** change the workflow's state when folded (a component was added, a fact
  was produced, a condition matched, a runnable was dispatched, completed or failed, an
  event arrived, a timer was scheduled...);
* **trace events** record consequences that follow from state events by themselves (a join
  received a fact or fired, a map fanned out, a reduce gathered its elements, a step started
  waiting, nodes were skipped after a failure). Folding them changes nothing; they are there
  so that a log can be read and audited on its own.

Events are values: treat them as immutable. (They are plain slotted dataclasses rather than
``frozen=True`` ones because a frozen dataclass costs four times as much to create, and a
busy workflow creates several per step.)

Stored logs never contain code: :class:`ComponentAdded` holds its component in memory only;
its encoded form has the name, kind, parents and content hash (see :func:`build_record`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from runeflow.model.facts import Fact

if TYPE_CHECKING:
    from runeflow.model.components import Component

__all__ = [
    "EVENT_TYPES",
    "TRACE_KINDS",
    "ComponentAdded",
    "ComponentRemoved",
    "ConditionRejected",
    "ConditionSatisfied",
    "DownstreamSkipped",
    "ErrorInfo",
    "Event",
    "EventAwaited",
    "EventReceived",
    "FactProduced",
    "FanInCompleted",
    "FanOutEmitted",
    "JoinCompleted",
    "JoinFactReceived",
    "RunnableAnnotated",
    "RunnableCompleted",
    "RunnableDispatched",
    "RunnableFailed",
    "StateInitiated",
    "TimerCancelled",
    "TimerFired",
    "TimerScheduled",
    "WorkflowCreated",
    "build_record",
]


@dataclass(slots=True)
class ErrorInfo:
    """What went wrong in a runnable, in a form that can be stored."""

    type: str
    """Qualified name of the exception type, e.g. ``"builtins.ValueError"``."""
    message: str
    """``str(exception)``."""
    traceback: str = ""
    """The formatted traceback, when one was captured."""

    @classmethod
    def from_exception(cls, exc: BaseException, traceback: str = "") -> ErrorInfo:
        """Describe ``exc``."""
        t = type(exc)
        return cls(type=f"{t.__module__}.{t.__qualname__}", message=str(exc), traceback=traceback)

    def __str__(self) -> str:
        return f"{self.type.removeprefix('builtins.')}: {self.message}"


# --- build events -------------------------------------------------------------------------


@dataclass(slots=True)
class WorkflowCreated:
    """A workflow was created (always the first event of a log)."""

    name: str
    """The workflow's name, the key under which runners find its definition."""
    outputs: tuple[tuple[str, str], ...] = ()
    """Output ports as ``(port, component_name)`` pairs."""
    kind: Literal["workflow_created"] = "workflow_created"


@dataclass(slots=True)
class ComponentAdded:
    """A component was added to the graph under its parents."""

    name: str
    """The component's unique name in the workflow."""
    component_kind: str
    """``step``, ``rule``, ``map``, ``reduce``, ``accumulator``, ``state_machine``, ``await``."""
    parents: tuple[str, ...]
    """Parent names (``("root",)`` for a component fed by workflow inputs)."""
    hash: str
    """The component's content hash."""
    component: Component | None = field(default=None, compare=False, repr=False)
    """The component itself; in memory only, never encoded."""
    reads: tuple[str, ...] = ()
    """What a rule's condition reads of the workflow (meta-conditions), as
    ``"<kind>:<component>"`` (``"state_of:cart"``); empty for other components."""
    kind: Literal["component_added"] = "component_added"


@dataclass(slots=True)
class ComponentRemoved:
    """A component was removed from the graph, with its edges (``wf.remove``)."""

    name: str
    """The removed component."""
    kind: Literal["component_removed"] = "component_removed"


# --- state events -------------------------------------------------------------------------


@dataclass(slots=True)
class FactProduced:
    """A fact entered the workflow: an input, or a runnable's output."""

    fact: Fact
    """The new fact."""
    runnable_id: str | None = None
    """The runnable that produced it (``None`` for an input)."""
    kind: Literal["fact_produced"] = "fact_produced"


@dataclass(slots=True)
class ConditionSatisfied:
    """A rule's condition matched a fact; its reaction became runnable."""

    component: str
    """The rule."""
    fact_id: str
    """The fact it matched."""
    runnable_id: str
    """The id of the reaction's runnable."""
    kind: Literal["condition_satisfied"] = "condition_satisfied"


@dataclass(slots=True)
class ConditionRejected:
    """A rule's condition did not match a fact (or could not apply to its shape)."""

    component: str
    """The rule."""
    fact_id: str
    """The fact it did not match."""
    runnable_id: str
    """The id the reaction's runnable would have had."""
    kind: Literal["condition_rejected"] = "condition_rejected"


@dataclass(slots=True)
class StateInitiated:
    """An accumulator or state machine computed its initial state."""

    component: str
    """The accumulator or state machine."""
    scope_key: str
    """Always ``""`` today; reserved for per-scope state."""
    value: Any
    """The initial state."""
    kind: Literal["state_initiated"] = "state_initiated"


@dataclass(slots=True)
class RunnableDispatched:
    """A runnable was handed out by ``prepare_for_dispatch``."""

    runnable_id: str
    """The runnable."""
    component: str
    """Its component."""
    attempt: int = 1
    """1 for the first attempt, 2 for the first retry..."""
    kind: Literal["runnable_dispatched"] = "runnable_dispatched"


@dataclass(slots=True)
class RunnableCompleted:
    """A runnable's result was applied (its facts precede this event in the log)."""

    runnable_id: str
    """The runnable."""
    component: str
    """Its component."""
    duration: float = 0.0
    """Seconds spent executing."""
    kind: Literal["runnable_completed"] = "runnable_completed"


@dataclass(slots=True)
class RunnableFailed:
    """A runnable failed; nothing was produced and its downstream is skipped."""

    runnable_id: str
    """The runnable."""
    component: str
    """Its component."""
    error: ErrorInfo
    """What went wrong."""
    attempt: int = 1
    """The attempt that failed."""
    final: bool = True
    """``False`` when the runner will retry it (the activation stays pending)."""
    duration: float = 0.0
    """Seconds spent executing."""
    kind: Literal["runnable_failed"] = "runnable_failed"


@dataclass(slots=True)
class EventReceived:
    """An external event (or a fired timer) ended a wait."""

    wait_id: str
    """The wait that ended (the id of the waiting activation)."""
    component: str
    """The ``await_event`` step."""
    event: str
    """The event's name."""
    payload: Any = None
    """Data sent with it."""
    kind: Literal["event_received"] = "event_received"


@dataclass(slots=True)
class TimerScheduled:
    """A durable timer was armed for a wait."""

    timer_id: str
    """Unique id of the timer."""
    wait_id: str
    """The wait it will end (``""`` for a timer aimed at a step by name)."""
    component: str
    """The ``await_event`` step."""
    fire_at: float
    """When it fires, in the runner clock's seconds."""
    event: str = "timeout"
    """The event it delivers."""
    kind: Literal["timer_scheduled"] = "timer_scheduled"


@dataclass(slots=True)
class TimerFired:
    """A timer fired (its event follows as :class:`EventReceived` if the wait was open)."""

    timer_id: str
    """The timer."""
    kind: Literal["timer_fired"] = "timer_fired"


@dataclass(slots=True)
class TimerCancelled:
    """A timer was cancelled before it fired."""

    timer_id: str
    """The timer."""
    kind: Literal["timer_cancelled"] = "timer_cancelled"


@dataclass(slots=True)
class RunnableAnnotated:
    """A component's ``before`` or ``after`` hook returned annotations for a runnable."""

    runnable_id: str
    """The runnable."""
    component: str
    """Its component."""
    hook: str
    """``before`` (when it was handed out) or ``after`` (when its result came back)."""
    annotations: dict[str, Any]
    """What the hook returned."""
    kind: Literal["runnable_annotated"] = "runnable_annotated"


# --- trace events -------------------------------------------------------------------------


@dataclass(slots=True)
class JoinFactReceived:
    """A join received a fact from one of its parents."""

    component: str
    """The joining component."""
    parent: str
    """The parent that produced the fact."""
    fact_id: str
    """The fact."""
    kind: Literal["join_fact_received"] = "join_fact_received"


@dataclass(slots=True)
class JoinCompleted:
    """A join had a fact from every parent and became runnable."""

    component: str
    """The joining component."""
    fact_ids: tuple[str, ...]
    """The joined facts, in the parents' order."""
    kind: Literal["join_completed"] = "join_completed"


@dataclass(slots=True)
class FanOutEmitted:
    """A map split a collection into elements."""

    component: str
    """The map."""
    fact_id: str
    """The collection fact."""
    count: int
    """Number of elements."""
    kind: Literal["fan_out_emitted"] = "fan_out_emitted"


@dataclass(slots=True)
class FanInCompleted:
    """A reduce gathered every element of one fan-out."""

    component: str
    """The reduce."""
    fan_out_id: str
    """The collection fact that was fanned out."""
    count: int
    """Number of elements gathered."""
    kind: Literal["fan_in_completed"] = "fan_in_completed"


@dataclass(slots=True)
class EventAwaited:
    """A step started waiting for an external event."""

    wait_id: str
    """Identifies the wait (used by ``resume`` and timers)."""
    component: str
    """The ``await_event`` step."""
    fact_id: str
    """The fact it waits with."""
    events: tuple[str, ...]
    """The events it accepts."""
    timeout: float | None = None
    """Seconds until a ``timeout`` event is delivered, if set."""
    kind: Literal["event_awaited"] = "event_awaited"


@dataclass(slots=True)
class DownstreamSkipped:
    """Components that will not run for a fact because a runnable upstream failed."""

    runnable_id: str
    """The failed runnable."""
    component: str
    """The failed component."""
    skipped: tuple[str, ...]
    """Downstream components skipped for that input."""
    kind: Literal["downstream_skipped"] = "downstream_skipped"


Event: TypeAlias = (
    WorkflowCreated
    | ComponentAdded
    | ComponentRemoved
    | FactProduced
    | ConditionSatisfied
    | ConditionRejected
    | StateInitiated
    | RunnableDispatched
    | RunnableCompleted
    | RunnableFailed
    | EventReceived
    | TimerScheduled
    | TimerFired
    | TimerCancelled
    | RunnableAnnotated
    | JoinFactReceived
    | JoinCompleted
    | FanOutEmitted
    | FanInCompleted
    | EventAwaited
    | DownstreamSkipped
)

EVENT_TYPES: dict[str, type[Any]] = {
    cls.__dataclass_fields__["kind"].default: cls for cls in Event.__args__
}
"""Every event class, keyed by its ``kind`` tag (used by codecs to decode logs)."""

TRACE_KINDS = frozenset(
    {
        "join_fact_received",
        "join_completed",
        "fan_out_emitted",
        "fan_in_completed",
        "event_awaited",
        "downstream_skipped",
    }
)
"""Kinds whose folding changes nothing (see the module docstring)."""


def build_record(event: ComponentAdded) -> dict[str, Any]:
    """Return the storable form of a build event: name, kind, parents and hash; never code."""
    return {f.name: getattr(event, f.name) for f in fields(event) if f.name != "component"}
