"""The workflow: a graph of components plus the run state of one instance.

Every change goes through an event (:mod:`runeflow.model.events`): live calls build the
event, append it to the log and fold it into the state with the same method that
``from_events`` uses, so a log always rebuilds exactly the state it was written from.

Per-activation work touches only the component concerned and its children: facts,
pending activations, joins and reduces live in dicts keyed by id, never scanned.

The class is split by responsibility: the run state's records live in
:mod:`runeflow.model.runstate`, routing facts and folding events in
:mod:`runeflow.model.folding` (:class:`~runeflow.model.folding.Folding`), turning
activations into runnables in :mod:`runeflow.model.preparing`
(:class:`~runeflow.model.preparing.Preparing`), reading results in
:mod:`runeflow.model.results` (:class:`~runeflow.model.results.Results`), merging and
removing in :mod:`runeflow.model.compose`, replay in :mod:`runeflow.model.replay` and
snapshots in :mod:`runeflow.model.snapshot` (both below this module: neither imports it).
"""

from __future__ import annotations

import copy
import secrets
import types
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from runeflow.errors import InstanceStateError, UsageError, WorkflowDefinitionError
from runeflow.model import compose
from runeflow.model import events as ev
from runeflow.model.components import Component, Hook, Reduce, Step
from runeflow.model.facts import ROOT, Fact, FactRef, Scope, Signal
from runeflow.model.folding import Folding
from runeflow.model.folding import _fold_replayed_fact as _fold_replayed_fact
from runeflow.model.graph import Graph
from runeflow.model.hashing import short_id
from runeflow.model.policy import Policies, Policy
from runeflow.model.preparing import Preparing
from runeflow.model.replay import load_object, rebuild
from runeflow.model.results import ComponentRef, Results, _name_of
from runeflow.model.runnable import Runnable
from runeflow.model.runstate import (
    _COMPLETED,
    _DISPATCHED,
    Activation,
    EventBatch,
    Wait,
    _expand,
)
from runeflow.model.runstate import _FanIn as _FanIn
from runeflow.model.runstate import _JoinBuffer as _JoinBuffer
from runeflow.model.snapshot import restore_snapshot, take_snapshot
from runeflow.model.stateful import Composite

__all__ = ["Activation", "Wait", "Workflow", "load_definition", "workflow"]

_NO_INPUT: Any = object()


class Workflow(Preparing, Folding, Results):
    """A dataflow graph of components and the run state of one instance.

    Build one with :func:`workflow` and :meth:`add`; run it inline with
    :meth:`react_until_satisfied`, or drive the three phases yourself with
    :meth:`plan_eagerly`, :meth:`prepare_for_dispatch`, ``rf.execute_runnable`` and
    :meth:`apply_runnable`.
    """

    def __init__(
        self,
        name: str,
        outputs: Mapping[str, str] | None = None,
        policies: Mapping[str, Policy] | Policy | None = None,
    ) -> None:
        table = Policies(policies) if policies is not None else None
        if table is not None and table.is_empty():
            table = None
        self._g = Graph(name, outputs, table)
        self._reset()

    def _reset(self) -> None:
        self._facts: dict[str, Fact | FactRef] = {}
        self._index: dict[str, list[Fact | FactRef]] | None = None
        self._input_facts: list[Fact | FactRef] = []
        self._produced: list[Fact | FactRef] = []
        self._pending: dict[str, Activation] = {}
        self._matches: dict[str, Activation] = {}
        self._in_flight: dict[str, Activation] = {}
        self._joins: dict[tuple[str, Scope], _JoinBuffer] = {}
        self._fanin: dict[tuple[str, str], _FanIn] = {}
        self._acc_state: dict[str, Any] = {}
        self._acc_queue: dict[str, deque[Activation]] = {}
        self._waits: dict[str, Wait] = {}
        self._timers: dict[str, ev.TimerScheduled] = {}
        self._failures: dict[str, ev.RunnableFailed] = {}
        self._attempts: dict[str, int] = {}
        self._rejected: set[str] = set()
        self._events: list[Any] = []  # compact records; see _expand()
        self._committed = 0
        self._build_committed = 0
        self._inputs = 0
        self._nonce: str | None = None
        self._run_context: Mapping[str, Mapping[str, Any]] = {}
        self._replaying = False
        self._loader: Callable[[str], Any] | None = None
        self._annotations: dict[str, dict[str, Any]] = {}
        self._removed: list[ev.ComponentAdded] = []  # build records of components removed mid-run
        self.step_count = 0
        """Runnables completed or failed (final) so far."""

    # --- structure ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The workflow's name (the key under which runners find its definition)."""
        return self._g.name

    @property
    def outputs(self) -> dict[str, str]:
        """Output ports: port name → component name."""
        return dict(self._g.outputs)

    @property
    def components(self) -> Mapping[str, Component]:
        """Components by name, in insertion order (read-only view)."""
        return types.MappingProxyType(self._g.components)

    @property
    def graph(self) -> Graph:
        """The structure (shared with ``fresh()`` copies; treat as read-only)."""
        return self._g

    def definition_hash(self) -> str:
        """A digest of the structure: components, their content hashes and edges."""
        return self._g.definition_hash()

    def validate(self) -> Workflow:
        """Check what can only be checked once the graph is complete (output ports name
        components); return ``self``. Runners call it when given a definition, and the
        first input fed calls it.

        Raises:
            WorkflowDefinitionError: what is wrong, and how to fix it.
        """
        self._g.check_outputs()
        return self

    def add(
        self, component: Component | Composite | Callable[..., Any], to: Any = None
    ) -> Workflow:
        """Add ``component`` under ``to`` and return ``self``.

        Args:
            component: a component, a state-based component (``rf.fsm``, ``rf.saga``...:
                all its parts are added), or a plain function (wrapped with ``rf.step``).
            to: a parent name or component; a list of them makes a join (the child gets the
                parents' values positionally, in this order); ``None`` means the input.

        Raises:
            WorkflowDefinitionError: unknown parent, duplicate name, cycle, or a join child
                whose function cannot take its parents' values.
        """
        if not isinstance(component, Component):
            if isinstance(component, Composite):
                return self._add_composite(component, to)
            if not callable(component):
                raise WorkflowDefinitionError(
                    f"add() expects a component or a function, got {type(component).__name__}"
                )
            component = Step(component, None)
        if isinstance(component, Reduce) and to is None:
            to = component.map_name
        parents = (ROOT,) if to is None else _parent_names(to)
        if self._g.shared:
            self._g = self._g.copy()
        added = self._g.add(component, parents)
        if self._events or self._build_committed:  # the instance has a log: keep it whole
            self._events.extend(self._g.component_added(n) for n in added)
        return self

    def _add_composite(self, composite: Composite, to: Any) -> Workflow:
        graph = self._g.copy()  # all parts or none
        added: list[str] = []
        for part, parents in composite.parts(_parent_names(to)):
            added += graph.add(part, parents)
        self._g = graph
        if self._events or self._build_committed:
            self._events.extend(graph.component_added(n) for n in added)
        return self

    def merge(self, other: Workflow) -> Workflow:
        """Add ``other``'s components, edges, output ports and policies; return ``self``.

        A component both have must be identical (same kind, code and parents) and is kept
        once. Nothing changes unless everything merges.

        Raises:
            WorkflowDefinitionError: a same-named component differs, or an output port or a
                policy key means different things in the two workflows.
        """
        if not isinstance(other, Workflow):
            raise UsageError(f"merge() takes a Workflow, got {type(other).__name__}")
        graph, added = compose.merged_graph(self._g, other.graph)
        self._g = graph
        if self._events or self._build_committed:
            self._events.extend(graph.component_added(n) for n in added)
        return self

    def remove(self, *names: ComponentRef) -> Workflow:
        """Remove components with their edges; return ``self``.

        Components that something left in the graph depends on (a child, a rule whose
        condition reads it, an output port) must be removed together, in one call.

        Raises:
            WorkflowDefinitionError: an unknown name, or a dependant left behind.
            InstanceStateError: one of them has pending work (ready, running, waiting,
                queued, or facts buffered at a join or fan-in): let it finish first.
        """
        order = compose.removal_order(self._g, [_name_of(n) for n in names])
        compose.pending_work(self, order)
        self._own_graph()
        logged = bool(self._events or self._build_committed)
        if logged:  # the log keeps the build records of what it removes (event_log())
            mid = {e.name for e in self._events if isinstance(e, ev.ComponentAdded)}
            added_first = [n for n in self._g.components if n in set(order) - mid]
            self._removed += [self._g.component_added(n) for n in added_first]
        for name in order:
            self._g.remove(name)
            if logged:
                self._events.append(ev.ComponentRemoved(name))
        return self

    def hook(
        self, component: ComponentRef, *, before: Hook | None = None, after: Hook | None = None
    ) -> Workflow:
        """Attach ``before``/``after`` hooks to a component already added (see
        ``Component.with_hooks``); return ``self``.

        Only this workflow changes (and the instances ``fresh()`` makes of it afterwards):
        the component is copied, so other workflows using it are left as they are.
        """
        name = self._known(component)
        hooked = copy.copy(self._g.components[name]).with_hooks(before, after)
        self._own_graph()
        self._g.components[name] = hooked
        self._g.hooked.add(name)
        self._g._build_cache = None
        return self

    def connect(self, parent: ComponentRef, child: ComponentRef) -> Workflow:
        """Add an edge between two existing components; refuses edges that make a cycle."""
        self._own_graph()
        added = self._g.connect(_name_of(parent), _name_of(child))
        if self._events or self._build_committed:
            self._events.append(added)
        return self

    def _own_graph(self) -> None:
        if self._g.shared:
            self._g = self._g.copy()

    def required_context_keys(self) -> dict[str, list[str]]:
        """Run-context keys without a default, by component name (rule conditions, map
        pipelines, reducers and reactors included)."""
        out: dict[str, list[str]] = {}
        for name, comp in self._g.components.items():
            keys = list(dict.fromkeys(m.key for m in comp.context_keys() if m.required))
            if keys:
                out[name] = keys
        return out

    def fresh(self) -> Workflow:
        """Return a workflow over the same structure with empty run state, in O(1)."""
        self._g.shared = True
        wf = Workflow.__new__(Workflow)
        wf._g = self._g
        wf._reset()
        return wf

    # --- phase 1: plan and prepare --------------------------------------------------------

    def plan_eagerly(
        self,
        input: Any = _NO_INPUT,
        *,
        run_context: Mapping[str, Mapping[str, Any]] | None = None,
        key: str | None = None,
    ) -> Workflow:
        """Feed ``input`` (if given) and evaluate every pending rule condition.

        Args:
            input: a value for the workflow's root; omit it to re-plan from produced facts.
            run_context: values for ``rf.context`` parameters: ``{component: {key: value},
                "_global": {key: value}}``, merged per component and key into what earlier
                calls gave (a key given again takes the new value). Kept in memory only,
                never logged.
            key: an idempotency key for ``input`` (see :meth:`feed`).
        """
        if run_context is not None:
            self._run_context = _merge_context(self._run_context, run_context)
        if input is not _NO_INPUT:
            self.feed(input, key=key)
        self._run_matches()
        return self

    def feed(self, value: Any, *, key: str | None = None) -> Fact | FactRef:
        """Add ``value`` as a new input fact (without evaluating conditions) and return it.

        With ``key``, the fact's id derives from the key, and feeding the same key again
        returns the fact already fed without adding anything (a redelivered input).
        """
        if key is not None:
            fid = short_id("input-key", key)
            known = self._facts.get(fid)
            if known is not None:
                return known
        else:
            if self._nonce is None:
                self._nonce = secrets.token_hex(8)
            fid = short_id("input", self._nonce, str(self._inputs + 1))
        if not self._inputs and not self._g.outputs_checked:
            self._g.check_outputs()
        self._inputs += 1
        fact = Fact(fid, _materialize(value), ROOT, ROOT, (), (fid,))
        self._events.append(fact)
        self._add_fact(fact)
        return fact

    def is_runnable(self) -> bool:
        """True when something is ready to prepare (pending runnables or rule conditions)."""
        return bool(self._pending or self._matches)

    def next_runnables(self) -> list[tuple[Component, tuple[Fact | FactRef, ...]]]:
        """``(component, input facts)`` pairs ready to run, without preparing them."""
        self._run_matches()
        return [(a.component, a.facts) for a in self._pending.values()]

    def prepare_for_dispatch(self) -> list[Runnable]:
        """Hand out every ready activation as a self-contained :class:`Runnable`.

        Each is recorded as dispatched and is not handed out again; apply each result with
        :meth:`apply_runnable`.
        """
        if self._matches:
            self._run_matches()
        if not self._pending:
            return []
        pending = self._pending
        self._pending = {}
        in_flight = self._in_flight
        append = self._events.append
        hooked = self._g.hooked
        out = []
        for rid, act in pending.items():
            in_flight[rid] = act
            runnable = self._prepare(act)
            if runnable is not None:
                if hooked and runnable.component in hooked and not self._hook(runnable, "before"):
                    continue
                append((_DISPATCHED, rid, runnable.component, runnable.attempt))
                out.append(runnable)
        return out

    # --- phase 3: apply -------------------------------------------------------------------

    def apply_runnable(self, runnable: Runnable) -> Workflow:
        """Fold an executed runnable back in; return ``self``.

        A completed runnable produces its fact; a failed one is recorded (see
        :meth:`failures`) and its downstream is skipped for that input. Applying the same
        runnable twice has no further effect.
        """
        act = self._in_flight.get(runnable.id)
        if act is None:
            rid = runnable.id
            if rid in self._facts or rid in self._failures or rid in self._rejected:
                return self
            raise InstanceStateError(
                f"runnable {runnable.id} ({runnable.component}) is not in flight in workflow "
                f"{self.name!r}: apply only runnables returned by this workflow's "
                "prepare_for_dispatch()"
            )
        if self._g.hooked and runnable.component in self._g.hooked:
            self._hook(runnable, "after")  # a hook that raises turns it into a failure
        status = runnable.status
        if status == "completed":
            comp = act.component
            rid = runnable.id
            result = runnable.result
            if type(result) is types.GeneratorType:
                result = list(result)
            fact = Fact(rid, result, comp.name, comp.hash, runnable.input_ids, act.scope)
            events = self._events
            events.append(fact)
            self._add_fact(fact)
            events.append((_COMPLETED, rid, comp.name, runnable.duration))
            del self._in_flight[rid]
            self.step_count += 1
            if self._acc_queue and comp.name in self._acc_queue:
                self._advance_acc(comp)
        elif status == "failed":
            self._record_failure(runnable, final=True)
        else:
            raise InstanceStateError(
                f"runnable {runnable.id} ({runnable.component}) has not been executed: "
                "pass it through rf.execute_runnable() first"
            )
        return self

    def record_failed_attempt(self, runnable: Runnable) -> Workflow:
        """Log a failed attempt that will be retried (the activation stays in flight)."""
        self._record_failure(runnable, final=False)
        return self

    def _record_failure(self, runnable: Runnable, *, final: bool, dispatched: bool = True) -> None:
        assert runnable.error is not None
        if final and self._absorbs(runnable, dispatched):  # a saga's action: it aborts
            return
        event = ev.RunnableFailed(
            runnable_id=runnable.id,
            component=runnable.component,
            error=runnable.error,
            attempt=runnable.attempt,
            final=final,
            duration=runnable.duration,
        )
        self._events.append(event)
        self._fold_failed(event)
        if final:
            below = self._g.below(runnable.component)
            if below:
                self._events.append(
                    ev.DownstreamSkipped(
                        runnable_id=runnable.id,
                        component=runnable.component,
                        skipped=tuple(sorted(below)),
                    )
                )

    # --- convenience loops ----------------------------------------------------------------

    def react(self, input: Any = _NO_INPUT, **kwargs: Any) -> Workflow:
        """Feed ``input`` and run one generation of runnables inline."""
        self.plan_eagerly(input, **kwargs)
        for runnable in self.prepare_for_dispatch():
            self.apply_runnable(runnable.execute())
        return self.plan_eagerly()

    def react_until_satisfied(self, input: Any = _NO_INPUT, **kwargs: Any) -> Workflow:
        """Feed ``input`` and run inline until nothing is runnable (waits stay open)."""
        self.plan_eagerly(input, **kwargs)
        while self._pending or self._matches:
            for runnable in self.prepare_for_dispatch():
                self.apply_runnable(runnable.execute())
        return self

    # --- waits and timers -----------------------------------------------------------------

    def open_waits(self) -> list[Wait]:
        """Waits that have not received an event yet, oldest first."""
        return list(self._waits.values())

    def find_wait(
        self,
        event: str,
        step: str | None = None,
        wait_id: str | None = None,
        *,
        declared_only: bool = True,
    ) -> Wait:
        """Return the open wait that ``event`` would resume.

        With ``declared_only=False`` (timers aimed at a step) any event is accepted.

        Raises:
            InstanceStateError: no open wait matches, or the event is not one it accepts.
        """
        if wait_id is not None:
            wait = self._waits.get(wait_id)
            if wait is None:
                raise InstanceStateError(f"no open wait {wait_id!r} in workflow {self.name!r}")
            candidates = [wait]
        else:
            candidates = [w for w in self._waits.values() if step is None or w.component == step]
        if not candidates:
            where = f"step {step!r}" if step else "any step"
            raise InstanceStateError(
                f"workflow {self.name!r} has no open wait on {where}: nothing to resume "
                f"with {event!r}"
            )
        for wait in candidates:
            if event in wait.events or not declared_only:
                return wait
        accepted = sorted({e for w in candidates for e in w.events})
        raise InstanceStateError(
            f"event {event!r} is not accepted by the open wait(s) "
            f"{sorted({w.component for w in candidates})}: they accept {accepted}"
        )

    def deliver_event(
        self,
        event: str,
        payload: Any = None,
        *,
        step: str | None = None,
        wait_id: str | None = None,
        declared_only: bool = True,
    ) -> Fact:
        """Resume the open wait that accepts ``event``; return the produced fact.

        The waiting step produces a :class:`~runeflow.model.facts.Signal`.
        ``declared_only=False`` lets a timer deliver ``timeout`` to a wait that did not
        declare it.
        """
        wait = self.find_wait(event, step, wait_id, declared_only=declared_only)
        received = ev.EventReceived(
            wait_id=wait.id, component=wait.component, event=event, payload=payload
        )
        self._events.append(received)
        self._fold_received(received)
        comp = self._g.components[wait.component]
        signal = Signal(event, payload, wait.component, self._value(wait.fact))
        fact = Fact(wait.id, signal, comp.name, comp.hash, (wait.fact.id,), wait.fact.scope)
        self._events.append(fact)
        self._add_fact(fact)
        return fact

    def record(self, event: ev.Event) -> Workflow:
        """Append and fold an event built outside the model (timers, for instance)."""
        self._events.append(event)
        self._FOLD[event.kind](self, event)
        return self

    def pending_timers(self) -> list[ev.TimerScheduled]:
        """Timers scheduled and neither fired nor cancelled."""
        return list(self._timers.values())

    # --- runner support -------------------------------------------------------------------

    def in_flight(self) -> list[str]:
        """Ids of runnables dispatched and not yet applied."""
        return list(self._in_flight)

    def requeue_in_flight(self) -> int:
        """Make dispatched-but-unapplied activations ready again (after a crash)."""
        n = len(self._in_flight)
        self._pending.update(self._in_flight)
        self._in_flight.clear()
        return n

    def attempts(self, runnable_id: str) -> int:
        """Failed attempts recorded for a runnable."""
        return self._attempts.get(runnable_id, 0)

    def set_fact_loader(self, loader: Callable[[str], Any] | None) -> None:
        """Set how values of not-yet-loaded facts (:class:`FactRef`) are fetched."""
        self._loader = loader

    # --- the event log --------------------------------------------------------------------

    def event_log(self) -> list[ev.Event]:
        """The whole log: build events first, then every runtime event in order."""
        return [*self._initial_build(), *map(_expand, self._events)]  # build events first

    def _initial_build(self) -> Sequence[ev.Event]:
        """Build events, less components added mid-run (those sit in the runtime log), plus
        those removed mid-run (their removal sits there)."""
        build = self._g.build_events()
        mid = {e.name for e in self._events if isinstance(e, ev.ComponentAdded)}
        if not mid and not self._removed:
            return build
        kept = [e for e in build if not (isinstance(e, ev.ComponentAdded) and e.name in mid)]
        return [*kept, *self._removed]

    def uncommitted_events(self) -> list[ev.Event]:
        """Events produced since the previous call (build events included the first time)."""
        return self.uncommitted_batch().events()

    def uncommitted_batch(self) -> EventBatch:
        """:meth:`uncommitted_events` as an :class:`EventBatch`, whose events are made only
        when read (what runners hand their stores)."""
        head: tuple[ev.Event, ...] = ()
        if not self._committed and not self._build_committed:
            build = self._initial_build()
            head = build if type(build) is tuple else tuple(build)
            self._build_committed = len(head)
        committed, events = self._committed, self._events
        self._committed = len(events)
        return EventBatch(head, tuple(events[committed:]))

    def has_uncommitted(self) -> bool:
        """True when :meth:`uncommitted_events` would return something."""
        return self._committed < len(self._events) or (
            not self._committed and not self._build_committed
        )

    def forget_committed(self) -> None:
        """Drop committed runtime events from memory (the store keeps them)."""
        del self._events[: self._committed]
        self._committed = 0
        self._build_committed = len(self._g.build_events())

    @classmethod
    def from_events(
        cls,
        events: Iterable[ev.Event],
        definition: Workflow | Callable[[], Workflow] | str | None = None,
        *,
        migrate: bool = False,
    ) -> Workflow:
        """Rebuild a workflow from its log.

        Args:
            events: the log, as returned by :meth:`event_log` or streamed from a store.
            definition: where the code comes from when the log holds none (a stored log):
                a Workflow, a builder returning one, or an import path ``"pkg.mod:attr"``.
            migrate: accept components whose hash differs from the log's (the code
                changed); otherwise that is a ``DefinitionMismatchError``.
        """
        defn = load_definition(definition) if definition is not None else None
        return rebuild(cls, events, defn, migrate=migrate)

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"<Workflow {self.name!r} components={len(self._g.components)} facts={c['facts']} "
            f"pending={c['pending']} in_flight={c['in_flight']} waits={c['waits']}>"
        )

    # --- snapshots (see runeflow.model.snapshot) ------------------------------------------

    def snapshot(self, *, values: bool = True) -> dict[str, Any]:
        """Return the structure and run state as plain data (see ``take_snapshot``)."""
        return take_snapshot(self, values=values)

    @classmethod
    def from_snapshot(
        cls,
        snapshot: Mapping[str, Any],
        definition: Workflow | Callable[[], Workflow] | str | None = None,
        events_after: Iterable[ev.Event] = (),
        *,
        migrate: bool = False,
        loader: Callable[[str], Any] | None = None,
    ) -> Workflow:
        """Rebuild a workflow from a snapshot plus the events logged after it.

        The result equals ``from_events`` over the whole log. Arguments as in
        :meth:`from_events`; ``events_after`` are the events after the snapshot's cursor;
        ``loader`` fetches the values of facts the snapshot records without one.
        """
        defn = load_definition(definition) if definition is not None else None
        return restore_snapshot(cls, snapshot, defn, events_after, migrate=migrate, loader=loader)


def load_definition(definition: Any) -> Workflow:
    """Turn a Workflow, a builder returning one or an import path into a Workflow.

    Raises:
        WorkflowDefinitionError: the path cannot be imported, or the object is not a
            Workflow nor a function returning one.
    """
    obj = load_object(definition) if isinstance(definition, str) else definition
    if isinstance(obj, Workflow):
        return obj
    if callable(obj):
        built = obj()
        if isinstance(built, Workflow):
            return built
        raise WorkflowDefinitionError(
            f"the builder {obj!r} returned {type(built).__name__}, not a Workflow"
        )
    raise WorkflowDefinitionError(
        f"a definition must be a Workflow, a function returning one, or an import path; "
        f"got {type(obj).__name__}"
    )


def _merge_context(
    old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """``old`` updated with ``new``, per component and key."""
    if not isinstance(new, Mapping) or not all(isinstance(v, Mapping) for v in new.values()):
        raise UsageError(
            "run_context must be a dict {component name or '_global': {key: value}}, got "
            f"{new!r:.200}"
        )
    merged = dict(old)
    for component, values in new.items():
        merged[component] = {**merged.get(component, {}), **values}
    return merged


def _materialize(value: Any) -> Any:
    """Turn one-shot iterators (generators) into lists so the value can be replayed."""
    if isinstance(value, types.GeneratorType):
        return list(value)
    return value


def _parent_names(to: Any) -> tuple[str, ...]:
    if to is None:
        return (ROOT,)
    if isinstance(to, str | Component):
        return (_name_of(to),)
    if isinstance(to, Sequence):
        if not to:
            raise WorkflowDefinitionError("to= got an empty list of parents")
        return tuple(_name_of(t) for t in to)
    raise WorkflowDefinitionError(
        f"to= takes a name, a component or a list of them, got {type(to).__name__}"
    )


def workflow(
    *,
    name: str,
    steps: Sequence[Any] = (),
    rules: Sequence[Component] = (),
    outputs: Mapping[str, str] | None = None,
    policies: Mapping[str, Policy] | Policy | None = None,
) -> Workflow:
    """Build a workflow.

    Args:
        name: the workflow's name (runners find its definition by it).
        steps: components (or plain functions) fed by the input; an item may also be a
            ``(parent, [children...])`` pair to build a tree, nested as deep as needed.
        rules: rules fed by the input.
        outputs: output ports, ``{"port": "component_name"}``, used by ``results()``; each
            must name a component once the workflow is complete (checked when it gets its
            first input or is given to a runner).
        policies: how runners run its components, ``{"name, pattern, kind:<kind> or *":
            rf.Policy(...)}`` (see :mod:`runeflow.model.policy`); it travels with the
            definition, so every process that runs it applies the same policies.
    """
    wf = Workflow(name, outputs, policies)
    for item in steps:
        _add_tree(wf, item, None)
    for r in rules:
        wf.add(r)
    return wf


def _add_tree(wf: Workflow, item: Any, parent: str | None) -> None:
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], list | tuple):
        head, children = item
        _add_tree(wf, head, parent)
        head_name = _tree_name(wf, head)
        for child in children:
            _add_tree(wf, child, head_name)
        return
    if isinstance(item, Component) and wf.graph.components.get(item.name) is item:
        if parent is None:
            raise WorkflowDefinitionError(f"{item.name!r} appears twice", component=item.name)
        wf.connect(parent, item.name)
        return
    wf.add(item, to=parent)


def _tree_name(wf: Workflow, head: Any) -> str:
    if isinstance(head, Component | Composite):
        return head.name
    return list(wf.graph.components)[-1]
