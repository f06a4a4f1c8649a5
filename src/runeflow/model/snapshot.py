"""Snapshots: a workflow's run state as plain data, and rebuilding a workflow from one.

:func:`take_snapshot` returns a dict of lists, strings and numbers (plus the values the
workflow holds: fact values, map elements, accumulator states), ready for a store's codec.
:func:`restore_snapshot` rebuilds the workflow from it and folds the events logged after
it, giving the same state as folding the whole log (``Workflow.from_events``).

A snapshot holds no code: like a stored log, it records the structure as build records
(name, kind, parents, content hash), and the code comes from the definition, with the same
rules as replay (a changed component is a ``DefinitionMismatchError`` unless ``migrate``).

Facts are recorded as ``[id, component, producer, parents, scope]``, followed by the value
when the snapshot keeps values (``values=True``). A fact recorded without its value is
restored as a :class:`~runeflow.model.facts.FactRef`, to be loaded from the store when
needed. Everything else refers to facts by id. A restored workflow's ``event_log()`` starts
after the snapshot: the events before it are in the store, not in memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from runeflow.errors import WorkflowDefinitionError
from runeflow.model import events as ev
from runeflow.model.components import _MISSING
from runeflow.model.facts import Fact, FactRef, Scope
from runeflow.model.folding import Folding
from runeflow.model.replay import _fold_all, rebuild
from runeflow.model.runstate import Activation, Wait, _FanIn, _JoinBuffer

__all__ = ["SNAPSHOT_FORMAT", "hot_fact_ids", "materialize", "restore_snapshot", "take_snapshot"]

SNAPSHOT_FORMAT = 2
"""Version of the snapshot layout; a snapshot with a higher version is refused. Version 2
adds what a reader needs without the code, once the log before the snapshot is compacted
away: each component's meta-condition reads, each open wait's events and timeout."""

AnyFact = Fact | FactRef
W = TypeVar("W", bound=Folding)


def take_snapshot(wf: Folding, *, values: bool = True) -> dict[str, Any]:
    """Return ``wf``'s structure and run state as plain data.

    Args:
        wf: the workflow.
        values: record the values of loaded facts; with ``False`` every fact is recorded by
            reference only (for stores that keep fact values, see ``runeflow.recovery``).
    """
    g = wf.graph
    return {
        "format": SNAPSHOT_FORMAT,
        "workflow": wf.name,
        "definition_hash": wf.definition_hash(),
        "outputs": [list(pair) for pair in g.outputs.items()],
        "components": [
            [e.name, e.component_kind, list(e.parents), e.hash, list(e.reads)]
            for e in g.build_events()
            if isinstance(e, ev.ComponentAdded)
        ],
        "facts": [_fact_out(f, values) for f in wf._facts.values()],
        "inputs": [f.id for f in wf._input_facts],
        "produced": [f.id for f in wf._produced],
        "pending": [_act_out(a) for a in wf._pending.values()],
        "matches": [_act_out(a) for a in wf._matches.values()],
        "in_flight": [_act_out(a) for a in wf._in_flight.values()],
        "joins": [
            [name, _scope_out(scope), [[f.id for f in b] for b in buf.buffers]]
            for (name, scope), buf in wf._joins.items()
        ],
        "fanin": [
            [
                name,
                fan_out,
                e.count,
                [[i, f.id] for i, f in e.received.items()],
                sorted(e.dropped),
                e.failed,
            ]
            for (name, fan_out), e in wf._fanin.items()
        ],
        "acc_state": [_state_out(wf, name, state) for name, state in wf._acc_state.items()],
        "acc_queue": [[name, [_act_out(a) for a in q]] for name, q in wf._acc_queue.items()],
        "waits": [
            [w.id, w.component, w.fact.id, list(w.events), w.timeout] for w in wf._waits.values()
        ],
        "timers": [
            [t.timer_id, t.wait_id, t.component, t.fire_at, t.event] for t in wf._timers.values()
        ],
        "failures": [
            [
                f.runnable_id,
                f.component,
                [f.error.type, f.error.message, f.error.traceback],
                f.attempt,
                f.final,
                f.duration,
            ]
            for f in wf._failures.values()
        ],
        "attempts": [[rid, n] for rid, n in wf._attempts.items()],
        "rejected": sorted(wf._rejected),
        "annotations": [[rid, notes] for rid, notes in wf._annotations.items()],
        "input_count": wf._inputs,
        "step_count": wf.step_count,
    }


def restore_snapshot(
    cls: Callable[[str, Mapping[str, str]], W],
    snapshot: Mapping[str, Any],
    definition: Folding | None,
    events_after: Iterable[ev.Event] = (),
    *,
    migrate: bool = False,
    loader: Callable[[str], Any] | None = None,
    values: Mapping[str, Any] | None = None,
) -> W:
    """Rebuild a workflow of class ``cls`` from ``snapshot`` and the events logged after it
    (``Workflow.from_snapshot`` calls it).

    Args:
        cls: the workflow class.
        snapshot: a dict from :func:`take_snapshot` (possibly encoded and decoded since).
        definition: the code, a loaded Workflow.
        events_after: the events with a cursor after the snapshot's, in order.
        migrate: accept components whose hash differs from the snapshot's.
        loader: fetches values of facts recorded without one (set as the fact loader).
        values: values of facts recorded without one, known already (by fact id): those
            facts are restored whole rather than as references.

    Raises:
        DefinitionMismatchError: the definition does not match the snapshot's structure.
        WorkflowDefinitionError: the snapshot is not one this runeflow can read.
    """
    version = snapshot.get("format")
    if not isinstance(version, int) or version > SNAPSHOT_FORMAT:
        raise WorkflowDefinitionError(
            f"snapshot format {version!r} is not one this runeflow reads "
            f"(up to {SNAPSHOT_FORMAT}): upgrade runeflow, or rebuild from the full log"
        )
    defn = definition
    build: list[ev.Event] = [ev.WorkflowCreated(snapshot["workflow"], _pairs(snapshot["outputs"]))]
    build += [ev.ComponentAdded(c[0], c[1], tuple(c[2]), c[3]) for c in snapshot["components"]]
    wf = rebuild(cls, build, defn, migrate=migrate)
    wf.set_fact_loader(loader)
    _restore_state(wf, snapshot, values or {})
    fold_events(wf, events_after, defn, migrate=migrate)
    return wf


def fold_events(
    wf: Folding, events: Iterable[ev.Event], definition: Folding | None, *, migrate: bool
) -> None:
    """Fold ``events`` into ``wf`` as replay does (components added mid-run included)."""
    it: Iterator[ev.Event] = iter(events)
    first = next(it, None)
    if first is not None:
        _fold_all(wf, first, it, definition, migrate)


def hot_fact_ids(wf: Folding) -> list[str]:
    """Ids of facts whose values the workflow still needs to go on running.

    Inputs of pending, matching and in-flight activations and of queued accumulator
    activations, facts buffered at joins and reduces, accumulator states and open waits.
    """
    ids: dict[str, None] = {}
    acts: list[Activation] = [*wf._pending.values(), *wf._matches.values()]
    acts += wf._in_flight.values()
    for queue in wf._acc_queue.values():
        acts += queue
    for act in acts:
        ids.update(dict.fromkeys(f.id for f in act.facts))
    for buf in wf._joins.values():
        for b in buf.buffers:
            ids.update(dict.fromkeys(f.id for f in b))
    for entry in wf._fanin.values():
        ids.update(dict.fromkeys(f.id for f in entry.received.values()))
    ids.update(dict.fromkeys(s.id for s in wf._acc_state.values() if type(s) is FactRef))
    ids.update(dict.fromkeys(w.fact.id for w in wf._waits.values()))
    return [fid for fid in ids if type(wf._facts.get(fid)) is FactRef]


def materialize(wf: Folding, values: Mapping[str, Any]) -> None:
    """Give the facts listed in ``values`` their values, everywhere ``wf`` holds them."""
    if not values:
        return
    facts = wf._facts
    for fid, value in values.items():
        ref = facts.get(fid)
        if type(ref) is FactRef:
            facts[fid] = ref.with_value(value)

    def full(f: AnyFact) -> AnyFact:
        return facts[f.id] if type(f) is FactRef and f.id in values else f

    wf._input_facts = [full(f) for f in wf._input_facts]
    wf._produced = [full(f) for f in wf._produced]
    wf._index = None
    acts: list[Activation] = [*wf._pending.values(), *wf._matches.values()]
    acts += wf._in_flight.values()
    for queue in wf._acc_queue.values():
        acts += queue
    for act in acts:
        act.facts = tuple(full(f) for f in act.facts)
    for buf in wf._joins.values():
        buf.buffers = [deque(full(f) for f in b) for b in buf.buffers]
    for entry in wf._fanin.values():
        entry.received = {i: full(f) for i, f in entry.received.items()}
    for wait in wf._waits.values():
        wait.fact = full(wait.fact)
    for name, state in wf._acc_state.items():
        if type(state) is FactRef and state.id in values:
            wf._acc_state[name] = values[state.id]


# --- writing ----------------------------------------------------------------------------


def _fact_out(fact: AnyFact, values: bool) -> list[Any]:
    out = [fact.id, fact.component, fact.producer, list(fact.parents), _scope_out(fact.scope)]
    if values and type(fact) is Fact:
        out.append(fact.value)
    return out


def _scope_out(scope: Scope) -> list[Any]:
    return [scope[0], *[list(tag) for tag in scope[1:]]] if scope else []


def _act_out(act: Activation) -> list[Any]:
    out = [act.id, act.component.name, [f.id for f in act.facts], _scope_out(act.scope)]
    if act.element is not _MISSING:
        out.append(act.element)
    return out


def _state_out(wf: Folding, name: str, state: Any) -> list[Any]:
    """``[name, "fact", fact_id]`` when the state is a fact's value, else ``[name, "value", v]``."""
    if type(state) is FactRef:
        return [name, "fact", state.id]
    produced = wf._by_component().get(name)
    if produced:
        last = produced[-1]
        if type(last) is Fact and last.value is state:
            return [name, "fact", last.id]
    return [name, "value", state]


# --- reading ----------------------------------------------------------------------------


def _pairs(obj: list[list[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((a, b) for a, b in obj)


def _scope_in(obj: list[Any], share: Callable[[Any], Any] | None = None) -> Scope:
    if share is None or not obj:
        return (obj[0], *[tuple(tag) for tag in obj[1:]]) if obj else ()
    tags = [(share(m), share(f), i, n) for m, f, i, n in obj[1:]]
    return share((share(obj[0]), *tags))  # type: ignore[no-any-return]


def _sharing() -> Callable[[Any], Any]:
    """Return ``share(x)``: the first object equal to ``x`` seen so far (``x`` itself if new)."""
    seen: dict[Any, Any] = {}
    return lambda x: seen.setdefault(x, x)


def _restore_state(wf: Folding, snap: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    facts: dict[str, AnyFact] = {}
    share = _sharing()  # equal names, hashes, parents and scopes: one object each
    for rec in snap["facts"]:
        fid, comp, producer, parents, scope = rec[:5]
        comp, producer = share(comp), share(producer)
        parents_t = share(tuple(share(p) for p in parents))
        scope_t = _scope_in(scope, share)
        if len(rec) > 5:
            facts[fid] = Fact(fid, rec[5], comp, producer, parents_t, scope_t)
        elif fid in values:
            facts[fid] = Fact(fid, values[fid], comp, producer, parents_t, scope_t)
        else:
            facts[fid] = FactRef(fid, comp, producer, parents_t, scope_t)
    wf._facts = facts
    wf._input_facts = [facts[i] for i in snap["inputs"]]
    wf._produced = [facts[i] for i in snap["produced"]]
    act = _activation_reader(wf, facts)
    wf._pending = {a.id: a for a in map(act, snap["pending"])}
    wf._matches = {a.id: a for a in map(act, snap["matches"])}
    wf._in_flight = {a.id: a for a in map(act, snap["in_flight"])}
    for name, scope, buffers in snap["joins"]:
        buf = _JoinBuffer(len(buffers))
        buf.buffers = [deque(facts[i] for i in b) for b in buffers]
        buf.empty = sum(1 for b in buffers if not b)
        wf._joins[(name, _scope_in(scope))] = buf
    for name, fan_out, count, received, dropped, failed in snap["fanin"]:
        entry = _FanIn(count)
        entry.received = {i: facts[f] for i, f in received}
        entry.dropped, entry.failed = set(dropped), failed
        wf._fanin[(name, fan_out)] = entry
    for name, how, what in snap["acc_state"]:
        wf._acc_state[name] = _state_in(facts[what]) if how == "fact" else what
    wf._acc_queue = {name: deque(map(act, q)) for name, q in snap["acc_queue"]}
    components = wf.graph.components
    for wid, comp, fid, *_ in snap["waits"]:  # events and timeout come from the code
        wf._waits[wid] = Wait(wid, components[comp], facts[fid])  # type: ignore[arg-type]
    for tid, wid, comp, fire_at, event in snap["timers"]:
        wf._timers[tid] = ev.TimerScheduled(tid, wid, comp, fire_at, event)
    for rid, comp, (etype, msg, tb), attempt, final, duration in snap["failures"]:
        error = ev.ErrorInfo(etype, msg, tb)
        wf._failures[rid] = ev.RunnableFailed(rid, comp, error, attempt, final, duration)
    wf._attempts = {rid: n for rid, n in snap["attempts"]}
    wf._rejected = set(snap["rejected"])
    wf._annotations = {rid: dict(notes) for rid, notes in snap.get("annotations", ())}
    wf._inputs = snap["input_count"]
    wf.step_count = snap["step_count"]


def _state_in(fact: AnyFact) -> Any:
    return fact.value if type(fact) is Fact else fact


def _activation_reader(
    wf: Folding, facts: Mapping[str, AnyFact]
) -> Callable[[list[Any]], Activation]:
    components = wf.graph.components

    def read(rec: list[Any]) -> Activation:
        element = rec[4] if len(rec) > 4 else _MISSING
        inputs = tuple(facts[i] for i in rec[2])
        return Activation(rec[0], components[rec[1]], inputs, _scope_in(rec[3]), element)

    return read
