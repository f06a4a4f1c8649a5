"""Folding events into a workflow's run state, shared by live calls and replay.

:class:`Folding` is mixed into :class:`~runeflow.model.workflow.Workflow`. A live call
builds an event, appends it to the log and folds it with the same method that
``Workflow.from_events`` uses (through :data:`Folding._FOLD`), so a log always rebuilds
exactly the state it was written from. Routing a new fact touches only its component's
children: pending activations, joins and fan-ins live in dicts keyed by id, never scanned.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from runeflow.model import events as ev
from runeflow.model.components import Component, Reduce
from runeflow.model.facts import ROOT, Fact, FactRef, Scope
from runeflow.model.hashing import short_id
from runeflow.model.runstate import Activation, Wait, _FanIn, _JoinBuffer

if TYPE_CHECKING:
    from runeflow.model.graph import Graph

__all__ = ["Folding"]


class Folding:
    """Routing facts and folding events into the run state (mixed into ``Workflow``)."""

    _FOLD: ClassVar[dict[str, Callable[[Folding, Any], None]]]
    """Fold handler by event kind: how replay and ``Workflow.record`` apply an event."""

    if TYPE_CHECKING:
        _g: Graph
        _facts: dict[str, Fact | FactRef]
        _index: dict[str, list[Fact | FactRef]] | None
        _input_facts: list[Fact | FactRef]
        _produced: list[Fact | FactRef]
        _pending: dict[str, Activation]
        _matches: dict[str, Activation]
        _in_flight: dict[str, Activation]
        _joins: dict[tuple[str, Scope], _JoinBuffer]
        _fanin: dict[tuple[str, str], _FanIn]
        _acc_state: dict[str, Any]
        _acc_queue: dict[str, deque[Activation]]
        _waits: dict[str, Wait]
        _timers: dict[str, ev.TimerScheduled]
        _failures: dict[str, ev.RunnableFailed]
        _attempts: dict[str, int]
        _rejected: set[str]
        _annotations: dict[str, dict[str, Any]]
        _events: list[Any]
        _inputs: int
        _replaying: bool
        _committed: int
        _build_committed: int
        step_count: int

        @property
        def name(self) -> str:
            """The workflow's name (``Workflow.name``)."""

        @property
        def graph(self) -> Graph:
            """The structure (``Workflow.graph``)."""

        def definition_hash(self) -> str:
            """See ``Workflow.definition_hash``."""

        def set_fact_loader(self, loader: Callable[[str], Any] | None) -> None:
            """See ``Workflow.set_fact_loader``."""

        def _own_graph(self) -> None: ...

        def _by_component(self) -> dict[str, list[Fact | FactRef]]: ...

        def _value(self, fact: Fact | FactRef) -> Any: ...

        def _fail_unprepared(self, act: Activation, exc: Exception) -> None: ...

    def _add_fact(self, fact: Fact | FactRef) -> None:
        """Fold a ``FactProduced``: record the fact and route it to its children."""
        name = fact.component
        self._facts[fact.id] = fact
        g = self._g
        if name == ROOT:
            self._input_facts.append(fact)
        else:
            self._produced.append(fact)
            if self._index is not None:
                self._index.setdefault(name, []).append(fact)
            if name in g.stateful:
                self._acc_state[name] = fact.value if type(fact) is Fact else fact
        components = g.components
        joins = g.join_index
        for child in g.children[name]:
            comp = components[child]
            if child in joins:
                self._route_join(comp, name, fact)
            elif comp.kind == "step":
                rid = short_id(comp.hash, fact.id)
                self._pending[rid] = Activation(rid, comp, (fact,), fact.scope)
            else:
                self._route(comp, fact, (fact,), fact.scope)

    def _route(
        self, comp: Component, fact: Fact | FactRef, facts: tuple[Fact | FactRef, ...], scope: Scope
    ) -> None:
        kind = comp.kind
        if kind == "step":
            rid = short_id(comp.hash, fact.id) if len(facts) == 1 else _join_id(comp, facts)
            self._pending[rid] = Activation(rid, comp, facts, scope)
        elif kind == "rule":
            rid = short_id(comp.hash, fact.id) if len(facts) == 1 else _join_id(comp, facts)
            self._matches[rid] = Activation(rid, comp, facts, scope)
        elif kind == "map":
            self._route_map(comp, fact)
        elif kind == "reduce":
            self._route_reduce(comp, fact)  # type: ignore[arg-type]
        elif kind in ("accumulator", "state_machine"):
            self._route_acc(comp, fact)
        elif kind == "await":
            wid = short_id(comp.hash, fact.id)
            self._waits[wid] = Wait(wid, comp, fact)  # type: ignore[arg-type]
            if not self._replaying:
                self._events.append(
                    ev.EventAwaited(
                        wait_id=wid,
                        component=comp.name,
                        fact_id=fact.id,
                        events=comp.events,  # type: ignore[attr-defined]
                        timeout=comp.timeout,  # type: ignore[attr-defined]
                    )
                )

    def _route_join(self, comp: Component, parent: str, fact: Fact | FactRef) -> None:
        index = self._g.join_index[comp.name]
        key = (comp.name, fact.scope)
        state = self._joins.get(key)
        if state is None:
            state = self._joins[key] = _JoinBuffer(len(index))
        buffer = state.buffers[index[parent]]
        if not buffer:
            state.empty -= 1
        buffer.append(fact)
        live = not self._replaying
        if live:
            self._events.append(ev.JoinFactReceived(comp.name, parent, fact.id))
        if not state.empty:
            facts = state.pop()
            if state.empty == len(index):
                del self._joins[key]
            if live:
                self._events.append(ev.JoinCompleted(comp.name, tuple(f.id for f in facts)))
            self._route(comp, fact, facts, fact.scope)

    def _route_map(self, comp: Component, fact: Fact | FactRef) -> None:
        value = self._value(fact)
        if isinstance(value, str | bytes | bytearray) or not isinstance(value, Iterable):
            rid = short_id(comp.hash, fact.id)
            err = TypeError(
                f"map {comp.name!r} needs a collection (list, tuple, ...), "
                f"got {type(value).__name__}"
            )
            act = Activation(rid, comp, (fact,), fact.scope)
            self._in_flight[rid] = act
            if not self._replaying:  # replay folds the logged failure instead
                self._fail_unprepared(act, err)
            return
        elements = list(value)
        n = len(elements)
        scope = fact.scope
        fid = fact.id
        name = comp.name
        h = comp.hash
        for i, element in enumerate(elements):
            rid = short_id(h, fid, str(i))
            self._pending[rid] = Activation(
                rid, comp, (fact,), (*scope, (name, fid, i, n)), element
            )
        if not self._replaying:
            self._events.append(ev.FanOutEmitted(component=name, fact_id=fid, count=n))
        if n == 0:
            for red in self._g.reduces_below(name):
                if red.map_name == name:
                    self._fanin[(red.name, fid)] = _FanIn(0)
                    self._check_fanin(red, fid, scope)

    def _route_reduce(self, comp: Reduce, fact: Fact | FactRef) -> None:
        scope = fact.scope
        for pos in range(len(scope) - 1, 0, -1):
            tag = scope[pos]
            if tag[0] == comp.map_name:
                break
        else:  # validated at add(); a fact without the tag cannot reach here
            return
        key = (comp.name, tag[1])
        entry = self._fanin.get(key)
        if entry is None:
            entry = self._fanin[key] = _FanIn(tag[3])
        entry.received[tag[2]] = fact
        self._check_fanin(comp, tag[1], scope[:pos])

    def _check_fanin(self, comp: Reduce, fan_out_id: str, scope: Scope) -> None:
        key = (comp.name, fan_out_id)
        entry = self._fanin[key]
        if len(entry.received) + len(entry.dropped) < entry.count:
            return
        del self._fanin[key]
        if not self._replaying:
            self._events.append(
                ev.FanInCompleted(component=comp.name, fan_out_id=fan_out_id, count=entry.count)
            )
        if entry.failed:
            return
        facts = tuple(entry.received[i] for i in sorted(entry.received))
        rid = short_id(comp.hash, fan_out_id)
        self._pending[rid] = Activation(rid, comp, facts, scope)

    def _route_acc(self, comp: Component, fact: Fact | FactRef) -> None:
        rid = short_id(comp.hash, fact.id)
        act = Activation(rid, comp, (fact,), fact.scope)
        queue = self._acc_queue.get(comp.name)
        if queue is None:
            self._acc_queue[comp.name] = deque()
            self._pending[rid] = act
        else:
            queue.append(act)

    def _advance_acc(self, comp: Component) -> None:
        queue = self._acc_queue.get(comp.name)
        if queue is None:
            return
        if queue:
            act = queue.popleft()
            self._pending[act.id] = act
        else:
            del self._acc_queue[comp.name]

    def _drop(self, comp: Component, scope: Scope, *, failed: bool) -> None:
        """An activation inside a fan-out ended without output: tell the reduces below."""
        if len(scope) < 2:
            return
        reduces = self._g.reduces_below(comp.name)
        if not reduces:
            return
        for pos in range(1, len(scope)):
            map_name, fan_out_id, index, count = scope[pos]
            for red in reduces:
                if red.map_name != map_name:
                    continue
                key = (red.name, fan_out_id)
                entry = self._fanin.get(key)
                if entry is None:
                    entry = self._fanin[key] = _FanIn(count)
                entry.dropped.add(index)
                entry.failed = entry.failed or failed
                self._check_fanin(red, fan_out_id, scope[:pos])

    def _fold_satisfied(self, event: ev.ConditionSatisfied) -> None:
        act = self._matches.pop(event.runnable_id)
        self._pending[act.id] = act

    def _fold_rejected(self, event: ev.ConditionRejected) -> None:
        act = self._matches.pop(event.runnable_id)
        self._rejected.add(act.id)
        self._drop(act.component, act.scope, failed=False)

    def _fold_dispatched(self, event: ev.RunnableDispatched) -> None:
        rid = event.runnable_id
        act = self._pending.pop(rid, None)
        if act is not None:
            self._in_flight[rid] = act
        elif rid not in self._in_flight:  # a re-dispatch after recovery finds it in flight
            raise KeyError(f"runnable {rid} ({event.component}) was dispatched but never ready")

    def _fold_completed(self, event: ev.RunnableCompleted) -> None:
        act = self._in_flight.pop(event.runnable_id)
        self.step_count += 1
        if act.component.name in self._acc_queue:
            self._advance_acc(act.component)

    def _fold_failed(self, event: ev.RunnableFailed) -> None:
        rid = event.runnable_id
        self._attempts[rid] = event.attempt
        if not event.final:
            return
        act = self._in_flight.pop(rid, None) or self._matches.pop(rid, None)
        if act is None:
            act = self._pending.pop(rid, None)
        self._failures[rid] = event
        self.step_count += 1
        if act is not None:
            if act.component.name in self._acc_queue:
                self._advance_acc(act.component)
            self._drop(act.component, act.scope, failed=True)

    def _fold_state(self, event: ev.StateInitiated) -> None:
        self._acc_state[event.component] = event.value

    def _fold_received(self, event: ev.EventReceived) -> None:
        self._waits.pop(event.wait_id, None)
        self.step_count += 1
        for tid, timer in list(self._timers.items()):
            if timer.wait_id == event.wait_id:
                del self._timers[tid]

    def _fold_timer(self, event: ev.TimerScheduled) -> None:
        self._timers[event.timer_id] = event

    def _fold_timer_end(self, event: ev.TimerFired | ev.TimerCancelled) -> None:
        self._timers.pop(event.timer_id, None)

    def _fold_annotated(self, event: ev.RunnableAnnotated) -> None:
        self._annotations.setdefault(event.runnable_id, {}).update(event.annotations)

    def _fold_removed(self, event: ev.ComponentRemoved) -> None:
        self._own_graph()
        self._g.remove(event.name)

    def _fold_nothing(self, event: Any) -> None:
        return None


def _fold_replayed_fact(wf: Folding, event: ev.FactProduced) -> None:
    if event.runnable_id is None:
        wf._inputs += 1
    wf._add_fact(event.fact)


Folding._FOLD = {
    "fact_produced": _fold_replayed_fact,
    "condition_satisfied": Folding._fold_satisfied,
    "condition_rejected": Folding._fold_rejected,
    "runnable_dispatched": Folding._fold_dispatched,
    "runnable_completed": Folding._fold_completed,
    "runnable_failed": Folding._fold_failed,
    "state_initiated": Folding._fold_state,
    "event_received": Folding._fold_received,
    "timer_scheduled": Folding._fold_timer,
    "timer_fired": Folding._fold_timer_end,
    "timer_cancelled": Folding._fold_timer_end,
    "runnable_annotated": Folding._fold_annotated,
    "component_removed": Folding._fold_removed,
    **{kind: Folding._fold_nothing for kind in ev.TRACE_KINDS},
}


def _join_id(comp: Component, facts: tuple[Fact | FactRef, ...]) -> str:
    return short_id(comp.hash, *[f.id for f in facts])
