"""A read-only view of a stored instance, folded from its event log (no code, no lease).

``runeflow show``, ``runeflow list``, ``runeflow graph --id`` and the dashboard must not run
anything, take no lease, and work even when the workflow's code is not importable here. The
stored log is enough: build events give the graph (names, kinds, parents), runtime events
give what ran, what failed, what is in flight, the open waits and the pending timers.

A view folds the log once; :func:`refresh_view` folds only the events appended since, so a
page that follows a running instance reads each event once. Without values
(``load_view(..., values=False)``) facts stay references, their values loaded on demand.

When the log was compacted (``Runner(compact=True)``), the view starts from the snapshot,
which holds the same without code (components, productions, failures, waits, timers, what
is in flight), and folds the events after it; only the per-component counts of runs,
retries and timings then cover just the events kept.

A listing needs much less: :class:`InstanceSummary` (:func:`load_summary`,
:func:`refresh_summary`) folds the same log into counters and what is open now (running
steps, waits, timers), keeping no fact and no event but the first final failure, so its
size does not grow with the log.

Neither is safe to read while another thread refreshes it: a cache shared between threads
reads and refreshes each one under the same lock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from runeflow.errors import CodecError, StoreError
from runeflow.model import events as ev
from runeflow.model.facts import ROOT, Fact, FactRef
from runeflow.stores.base import InstanceMeta, Store
from runeflow.stores.integrity import RESTORE_ADVICE

__all__ = [
    "ComponentState",
    "InstanceSummary",
    "InstanceView",
    "NodeInfo",
    "load_summary",
    "load_view",
    "refresh_summary",
    "refresh_view",
]

ComponentState = Literal["ran", "running", "waiting", "failed", "skipped", "pending"]
"""How a component stands in an instance, worst news first when several apply:
``failed`` (a final failure), ``running`` (dispatched, not yet applied), ``waiting`` (an
open wait), ``ran`` (completed or produced), ``skipped`` (downstream of a failure),
``pending`` (not reached yet)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeInfo:
    """A component as drawn and listed: its place in the graph and, for an instance, its state."""

    name: str
    """The component's name."""
    kind: str
    """``step``, ``rule``, ``map``, ``reduce``, ``accumulator``, ``state_machine``, ``await``."""
    parents: tuple[str, ...]
    """Parent names, in argument order (``"root"`` for the workflow's input)."""
    state: ComponentState | None = None
    """The component's state in the instance; ``None`` when drawing a bare definition."""
    counts: dict[str, int] = field(default_factory=dict)
    """Non-zero counts behind the state: ``ran``, ``running``, ``waiting``, ``failed``,
    ``skipped``, and ``unmatched`` (inputs a rule's condition rejected)."""
    reads: tuple[str, ...] = ()
    """What a rule's condition reads of the workflow (meta-conditions), as
    ``"<kind>:<component>"``; drawn as dashed edges."""


@dataclass(kw_only=True, slots=True)
class InstanceSummary:
    """What a listing shows of an instance, folded from its log into counters: no fact and
    no event is kept but the first final failure and the waits, timers and steps open now,
    so its size does not grow with the log (see :func:`load_summary`)."""

    meta: InstanceMeta
    """What the store keeps besides the log, as last read."""
    steps: int = 0
    """Runnables completed."""
    failures: int = 0
    """Final failures."""
    first_failure: ev.RunnableFailed | None = None
    """The first final failure."""
    running: dict[str, str] = field(default_factory=dict)
    """Runnables dispatched and not yet applied: ``runnable_id -> component``."""
    open_waits: dict[str, ev.EventAwaited] = field(default_factory=dict)
    """Waits with no event received yet, by wait id."""
    timers: dict[str, ev.TimerScheduled] = field(default_factory=dict)
    """Timers scheduled and neither fired nor cancelled, by timer id."""
    cursor: int = 0
    """How many events of the log are folded in."""


@dataclass(kw_only=True, slots=True)
class InstanceView:
    """Everything ``runeflow show`` reports about one instance."""

    meta: InstanceMeta
    """What the store keeps besides the log (status, times, definition path)."""
    events: list[ev.Event] = field(default_factory=list)
    """The log, in order (after :attr:`compacted` when it was compacted)."""
    compacted: int = 0
    """The cursor of the snapshot the view starts from, when the log before it was
    compacted away (0: folded from the whole log)."""
    steps: int = 0
    """Runnables completed or failed for good, and events received: the step count."""
    outputs: dict[str, str] = field(default_factory=dict)
    """Output ports, ``port -> component``."""
    components: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    """``name -> (kind, parents)``, in insertion order (components removed are left out)."""
    reads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """``rule name -> meta-conditions its condition reads`` (``"state_of:cart"``)."""
    inputs: list[Any] = field(default_factory=list)
    """Input values fed so far."""
    productions: list[tuple[str, Any]] = field(default_factory=list)
    """``(component, value)`` per produced fact, in order."""
    completed: Counter[str] = field(default_factory=Counter)
    """Completed runnables per component."""
    durations: dict[str, float] = field(default_factory=dict)
    """Seconds spent executing, per component (completed and failed attempts)."""
    failures: list[ev.RunnableFailed] = field(default_factory=list)
    """Final failures, in order."""
    retried: Counter[str] = field(default_factory=Counter)
    """Failed attempts that were retried, per component."""
    running: dict[str, str] = field(default_factory=dict)
    """Runnables dispatched and not yet applied: ``runnable_id -> component``."""
    open_waits: dict[str, ev.EventAwaited] = field(default_factory=dict)
    """Waits with no event received yet, by wait id."""
    received: list[ev.EventReceived] = field(default_factory=list)
    """Events that ended waits (external events and fired timers)."""
    timers: dict[str, ev.TimerScheduled] = field(default_factory=dict)
    """Timers scheduled and neither fired nor cancelled, by timer id."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Times each component was skipped because something upstream failed."""
    unmatched: Counter[str] = field(default_factory=Counter)
    """Inputs each rule's condition rejected."""
    facts: list[FactRef] = field(default_factory=list)
    """Every fact (inputs included) without its value, in order of production."""
    cursor: int = 0
    """How many events of the log are folded in (the position to read on from)."""
    values: bool = True
    """Whether fact values were read (``inputs`` and ``productions`` hold ``None`` else)."""
    keep_events: bool = True
    """Whether :attr:`events` keeps the log (a summary needs only the folded state)."""

    def summary(self) -> InstanceSummary:
        """This view's :class:`InstanceSummary` (a copy: it shares nothing that changes)."""
        return InstanceSummary(
            meta=self.meta,
            steps=sum(self.completed.values()),
            failures=len(self.failures),
            first_failure=self.failures[0] if self.failures else None,
            running=dict(self.running),
            open_waits=dict(self.open_waits),
            timers=dict(self.timers),
            cursor=self.cursor,
        )

    @property
    def fact_ids(self) -> set[str]:
        """The ids of the instance's facts."""
        return {f.id for f in self.facts}

    def results(self) -> dict[str, Any]:
        """The last value of each output port (or, without ports, of each sink component)."""
        ports = self.outputs or {n: n for n in self.sinks()}
        last: dict[str, Any] = {}
        for component, value in self.productions:
            last[component] = value
        return {port: last.get(name) for port, name in ports.items()}

    def sinks(self) -> list[str]:
        """Components without children, in insertion order."""
        parents = {p for _, ps in self.components.values() for p in ps}
        return [n for n in self.components if n not in parents]

    def productions_by_component(self) -> dict[str, list[Any]]:
        """Produced values grouped by component, in graph order."""
        grouped: dict[str, list[Any]] = {}
        for component, value in self.productions:
            grouped.setdefault(component, []).append(value)
        order = {n: i for i, n in enumerate(self.components)}
        return dict(sorted(grouped.items(), key=lambda kv: order.get(kv[0], len(order))))

    def nodes(self) -> list[NodeInfo]:
        """The graph's components with their state in this instance."""
        produced = Counter(c for c, _ in self.productions)
        failed = Counter(f.component for f in self.failures)
        running = Counter(self.running.values())
        waiting = Counter(w.component for w in self.open_waits.values())
        out = []
        for name, (kind, parents) in self.components.items():
            counts = {
                "ran": max(self.completed[name], produced[name]),
                "running": running[name],
                "waiting": waiting[name],
                "failed": failed[name],
                "skipped": self.skipped[name],
                "unmatched": self.unmatched[name],
            }
            state: ComponentState = next((s for s in _PRIORITY if counts[s]), "pending")
            out.append(
                NodeInfo(
                    name=name,
                    kind=kind,
                    parents=parents,
                    state=state,
                    counts={k: v for k, v in counts.items() if v},
                    reads=self.reads.get(name, ()),
                )
            )
        return out


_PRIORITY: tuple[ComponentState, ...] = ("failed", "running", "waiting", "ran", "skipped")


def load_view(
    store: Store, workflow_id: str, *, values: bool = True, events: bool = True
) -> InstanceView:
    """Fold the stored log of ``workflow_id`` into an :class:`InstanceView` (from its
    snapshot when the log was compacted).

    Args:
        store: where the instance is.
        workflow_id: the instance.
        values: read fact values (else they stay references: see :attr:`InstanceView.facts`).
        events: keep the log in :attr:`InstanceView.events`.

    Raises:
        WorkflowNotFoundError: no instance has that id.
        StoreError: the log (or the snapshot of a compacted one) cannot be read.
    """
    view = InstanceView(meta=store.get(workflow_id), values=values, keep_events=events)
    if view.meta.compacted:
        view.cursor = _from_snapshot(store, view, values)
    _fold_from(store, view, _fold_event, values=values)
    return view


def refresh_view(store: Store, view: InstanceView) -> InstanceView:
    """Bring ``view`` up to date: fold the events appended since it was read, and the
    instance's current metadata. Returns ``view`` itself, or a new view read from the start
    when the instance was deleted and created again meanwhile.

    Raises:
        WorkflowNotFoundError: the instance is gone.
        StoreError: the log cannot be read.
    """
    values, events = view.values, view.keep_events
    return _refresh(
        store,
        view,
        _fold_event,
        lambda meta: load_view(store, meta.workflow_id, values=values, events=events),
        values=values,
    )


def load_summary(store: Store, instance: InstanceMeta | str) -> InstanceSummary:
    """Fold the stored log of an instance into an :class:`InstanceSummary` (fact values are
    not read).

    Args:
        store: where the instance is.
        instance: the instance's id, or its metadata as just read (saves reading it again).

    Raises:
        WorkflowNotFoundError: no instance has that id.
        StoreError: the log cannot be read.
    """
    meta = store.get(instance) if isinstance(instance, str) else instance
    summary = InstanceSummary(meta=meta)
    if meta.compacted:  # what the snapshot holds, then the events after it
        seed = InstanceView(meta=meta, values=False, keep_events=False)
        summary.cursor = _from_snapshot(store, seed, False)
        summary.steps = seed.steps  # the snapshot's step count: no per-kind counts kept
        summary.failures = len(seed.failures)
        summary.first_failure = seed.failures[0] if seed.failures else None
        summary.running = dict(seed.running)
        summary.open_waits = dict(seed.open_waits)
        summary.timers = dict(seed.timers)
    _fold_from(store, summary, _fold_summary, values=False)
    return summary


def refresh_summary(store: Store, summary: InstanceSummary) -> InstanceSummary:
    """Bring ``summary`` up to date, as :func:`refresh_view` does a view.

    Raises:
        WorkflowNotFoundError: the instance is gone.
        StoreError: the log cannot be read.
    """
    return _refresh(
        store, summary, _fold_summary, lambda meta: load_summary(store, meta), values=False
    )


_Folded = TypeVar("_Folded", InstanceView, InstanceSummary)


def _refresh(
    store: Store,
    folded: _Folded,
    fold: Callable[[_Folded, ev.Event], None],
    reload: Callable[[InstanceMeta], _Folded],
    *,
    values: bool,
) -> _Folded:
    """Fold what was appended to the log since ``folded`` was read (or read it again from
    the start when the instance was deleted and created again)."""
    meta = store.get(folded.meta.workflow_id)
    if (
        meta.created_at != folded.meta.created_at
        or meta.cursor < folded.cursor
        or meta.compacted > folded.cursor  # compacted past what was read: from the snapshot
    ):
        return reload(meta)
    folded.meta = meta
    if meta.cursor > folded.cursor:
        _fold_from(store, folded, fold, values=values)
    return folded


def _fold_from(
    store: Store, folded: _Folded, fold: Callable[[_Folded, ev.Event], None], *, values: bool
) -> None:
    for event in store.stream(folded.meta.workflow_id, after=folded.cursor, values=values):
        fold(folded, event)
        folded.cursor += 1


def _fold_event(view: InstanceView, event: ev.Event) -> None:
    if view.keep_events:
        view.events.append(event)
    _fold(view, event)


def _fold_summary(summary: InstanceSummary, event: ev.Event) -> None:
    if isinstance(event, ev.RunnableDispatched):
        summary.running[event.runnable_id] = event.component
    elif isinstance(event, ev.RunnableCompleted):
        summary.running.pop(event.runnable_id, None)
        summary.steps += 1
    elif isinstance(event, ev.RunnableFailed):
        summary.running.pop(event.runnable_id, None)
        if event.final:
            summary.failures += 1
            if summary.first_failure is None:
                summary.first_failure = event
    else:
        _fold_open(summary.open_waits, summary.timers, event)


def _from_snapshot(store: Store, view: InstanceView, values: bool) -> int:
    """Seed ``view`` from the instance's snapshot; return the snapshot's cursor."""
    wid = view.meta.workflow_id
    stored = store.load_snapshot(wid)
    if stored is None:
        raise StoreError(
            f"cannot read workflow {wid!r}: events 1-{view.meta.compacted} of its log were "
            f"compacted into a snapshot that is missing: {RESTORE_ADVICE}",
            workflow_id=wid,
        )
    cursor, data = stored
    try:
        _seed(store, view, store.codec.decode(data), values)
    except (CodecError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise StoreError(
            f"cannot read the snapshot of workflow {wid!r} at cursor {cursor}: {exc}. The "
            f"events before it were compacted away: {RESTORE_ADVICE}",
            workflow_id=wid,
            cursor=cursor,
        ) from exc
    view.compacted = cursor
    return cursor


def _seed(store: Store, view: InstanceView, snap: Any, values: bool) -> None:
    """Fill ``view`` from a decoded snapshot (see ``runeflow.model.snapshot``)."""
    view.outputs = {port: name for port, name in snap["outputs"]}
    for rec in snap["components"]:
        view.components[rec[0]] = (rec[1], tuple(rec[2]))
        if len(rec) > 4 and rec[4]:
            view.reads[rec[0]] = tuple(rec[4])
    facts = {rec[0]: rec for rec in snap["facts"]}
    shown = [*snap["inputs"], *snap["produced"]]
    refs = [fid for fid in shown if len(facts[fid]) <= 5] if values else []
    loaded = store.load_facts(refs) if refs else {}

    def value(fact_id: str) -> Any:
        rec = facts[fact_id]
        return rec[5] if len(rec) > 5 else loaded.get(fact_id)

    view.inputs = [value(fid) for fid in snap["inputs"]]
    view.productions = [(facts[fid][1], value(fid)) for fid in snap["produced"]]
    for rec in snap["facts"]:  # in the order they were produced
        fid, comp, producer, parents, scope = rec[:5]
        view.facts.append(FactRef(fid, comp, producer, tuple(parents), _scope(scope)))
    view.running = {act[0]: act[1] for act in snap["in_flight"]}
    for w in snap["waits"]:  # events and timeout: snapshot format 2
        events, timeout = (tuple(w[3]), w[4]) if len(w) > 4 else ((), None)
        view.open_waits[w[0]] = ev.EventAwaited(w[0], w[1], w[2], events, timeout)
    for tid, wait_id, comp, fire_at, event in snap["timers"]:
        view.timers[tid] = ev.TimerScheduled(tid, wait_id, comp, fire_at, event)
    for rid, comp, (etype, message, tb), attempt, final, duration in snap["failures"]:
        error = ev.ErrorInfo(etype, message, tb)
        view.failures.append(ev.RunnableFailed(rid, comp, error, attempt, final, duration))
    view.steps = int(snap["step_count"])


def _scope(obj: list[Any]) -> Any:
    """A fact's scope as a snapshot stores it, back to the tuple a fact holds."""
    return (obj[0], *[tuple(tag) for tag in obj[1:]]) if obj else ()


def _fold(view: InstanceView, event: ev.Event) -> None:
    if isinstance(event, ev.WorkflowCreated):
        view.outputs = dict(event.outputs)
    elif isinstance(event, ev.ComponentAdded):
        view.components[event.name] = (event.component_kind, tuple(event.parents))
        if event.reads:
            view.reads[event.name] = tuple(event.reads)
    elif isinstance(event, ev.ComponentRemoved):
        view.components.pop(event.name, None)
        view.reads.pop(event.name, None)
    elif isinstance(event, ev.FactProduced):
        _fold_fact(view, event.fact)
    elif isinstance(event, ev.RunnableDispatched):
        view.running[event.runnable_id] = event.component
    elif isinstance(event, ev.RunnableCompleted):
        view.running.pop(event.runnable_id, None)
        view.completed[event.component] += 1
        view.steps += 1
        _add_duration(view, event.component, event.duration)
    elif isinstance(event, ev.RunnableFailed):
        view.running.pop(event.runnable_id, None)
        _add_duration(view, event.component, event.duration)
        if event.final:
            view.failures.append(event)
            view.steps += 1
        else:
            view.retried[event.component] += 1
    else:
        _fold_wait(view, event)


def _add_duration(view: InstanceView, component: str, seconds: float) -> None:
    view.durations[component] = view.durations.get(component, 0.0) + seconds


def _fold_fact(view: InstanceView, fact: Any) -> None:
    value = fact.value if isinstance(fact, Fact) else None
    view.facts.append(fact.ref() if isinstance(fact, Fact) else fact)
    if fact.component == ROOT:
        view.inputs.append(value)
    else:
        view.productions.append((fact.component, value))


def _fold_wait(view: InstanceView, event: ev.Event) -> None:
    if _fold_open(view.open_waits, view.timers, event):
        if isinstance(event, ev.EventReceived):
            view.received.append(event)
            view.steps += 1
    elif isinstance(event, ev.ConditionRejected):
        view.unmatched[event.component] += 1
    elif isinstance(event, ev.DownstreamSkipped):
        for name in event.skipped:
            view.skipped[name] += 1


def _fold_open(
    open_waits: dict[str, ev.EventAwaited], timers: dict[str, ev.TimerScheduled], event: ev.Event
) -> bool:
    """Fold an event that opens or closes a wait or a timer; whether ``event`` was one."""
    if isinstance(event, ev.EventAwaited):
        open_waits[event.wait_id] = event
    elif isinstance(event, ev.EventReceived):
        open_waits.pop(event.wait_id, None)
    elif isinstance(event, ev.TimerScheduled):
        timers[event.timer_id] = event
    elif isinstance(event, ev.TimerFired | ev.TimerCancelled):
        timers.pop(event.timer_id, None)
    else:
        return False
    return True
