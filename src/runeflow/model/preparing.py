"""Preparing activations to run: arguments, run context, fact values, rule conditions.

:class:`Preparing` is mixed into :class:`~runeflow.model.workflow.Workflow`: it turns a
ready activation into a self-contained :class:`~runeflow.model.runnable.Runnable`, loads
the values of facts recovered without them, evaluates rule conditions (with their run
context and meta-conditions), runs components' ``before``/``after`` hooks, and turns the
final failure of a component that absorbs failures (a saga's action) into its value.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from runeflow.errors import InstanceStateError, RunContextError
from runeflow.model import events as ev
from runeflow.model.components import (
    _MISSING,
    Accumulator,
    CallSpec,
    Component,
    Fold,
    Map,
    MetaRef,
    Reduce,
    Rule,
)
from runeflow.model.facts import Fact, FactRef
from runeflow.model.runnable import Runnable
from runeflow.model.runstate import _COMPLETED, _DISPATCHED, Activation

if TYPE_CHECKING:
    from runeflow.model.graph import Graph

__all__ = ["Preparing"]

_NO_KWARGS: dict[str, Any] = {}
_SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError)
_IMMUTABLE = (str, int, float, bool, bytes, type(None), frozenset)


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is plain data every store keeps (annotations are logged)."""
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if depth > 8:
        return False
    if isinstance(value, list | tuple):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _isolate(value: Any) -> Any:
    """Copy mutable state so a reducer mutating it cannot rewrite history."""
    if isinstance(value, _IMMUTABLE):
        return value
    return copy.deepcopy(value)


class Preparing:
    """Activations into runnables, fact values and rule conditions (mixed into ``Workflow``)."""

    if TYPE_CHECKING:
        _facts: dict[str, Fact | FactRef]
        _matches: dict[str, Activation]
        _in_flight: dict[str, Activation]
        _acc_queue: dict[str, deque[Activation]]
        step_count: int
        _acc_state: dict[str, Any]
        _attempts: dict[str, int]
        _events: list[Any]
        _g: Graph
        _run_context: Mapping[str, Mapping[str, Any]]
        _replaying: bool
        _loader: Callable[[str], Any] | None

        def _fold_state(self, event: ev.StateInitiated) -> None: ...

        def _fold_satisfied(self, event: ev.ConditionSatisfied) -> None: ...

        def _fold_rejected(self, event: ev.ConditionRejected) -> None: ...

        def _fold_annotated(self, event: ev.RunnableAnnotated) -> None: ...

        def _record_failure(
            self, runnable: Runnable, *, final: bool, dispatched: bool = True
        ) -> None: ...

        def _add_fact(self, fact: Fact | FactRef) -> None: ...

        def _advance_acc(self, comp: Component) -> None: ...

        def _by_component(self) -> dict[str, list[Fact | FactRef]]: ...

    def _prepare(self, act: Activation) -> Runnable | None:
        comp = act.component
        spec = comp.spec
        try:
            kwargs = self._context_for(comp) if spec.context else _NO_KWARGS
            fn: Callable[..., Any] | None = comp.fn
            kind = comp.kind
            if kind == "step" or kind == "rule":
                facts = act.facts
                if len(facts) == 1 and type(facts[0]) is Fact and spec.max_args == 1:
                    args: tuple[Any, ...] = (facts[0].value,)
                else:
                    args = self._args(comp, facts, spec.max_args, spec.min_args)
            elif isinstance(comp, Map):
                args = (act.element,)
            elif isinstance(comp, Reduce):
                fn = Fold(comp.fn)  # type: ignore[arg-type]
                values = tuple(self._value(f) for f in act.facts)
                args = (values, _isolate(comp.initial))
            else:
                assert isinstance(comp, Accumulator)
                args = (self._value(act.facts[0]), _isolate(self._state_of(comp)))
        except Exception as exc:  # a missing context key, an unloadable value
            self._fail_unprepared(act, exc)
            return None
        facts = act.facts
        return Runnable(
            act.id,
            comp.name,
            comp.kind,
            comp.hash,
            fn,
            args,
            kwargs,
            (facts[0].id,) if len(facts) == 1 else tuple(f.id for f in facts),
            comp.spec.is_async,
            self._attempts.get(act.id, 0) + 1 if self._attempts else 1,
        )

    def _args(
        self, comp: Component, facts: tuple[Fact | FactRef, ...], max_args: float, min_args: int
    ) -> tuple[Any, ...]:
        if len(facts) > 1:
            return tuple(self._value(f) for f in facts)
        if max_args == 0:
            return ()
        value = self._value(facts[0])
        if min_args >= 2:
            return tuple(value)
        return (value,)

    def _value(self, fact: Fact | FactRef) -> Any:
        if type(fact) is Fact:
            return fact.value
        known = self._facts.get(fact.id)
        if type(known) is Fact:  # loaded since this reference was taken
            return known.value
        if self._loader is None:
            raise InstanceStateError(
                f"the value of fact {fact.id} is not loaded and no fact loader is set: "
                "recover with a store that keeps fact values"
            )
        value = self._loader(fact.id)
        if not self._replaying:  # replay needs a value once (a map's collection): keep none
            self._facts[fact.id] = fact.with_value(value)  # type: ignore[union-attr]
        return value

    def _context_for(self, comp: Component, spec: CallSpec | None = None) -> dict[str, Any]:
        run_context = self._run_context
        own = run_context.get(comp.name, _NO_KWARGS)
        group = run_context.get(comp.group, _NO_KWARGS) if comp.group else _NO_KWARGS
        glb = run_context.get("_global", _NO_KWARGS)
        out = {}
        for param, marker in (spec or comp.spec).context:
            if type(marker) is MetaRef:
                out[param] = self._meta_value(marker)
            elif marker.key in own:
                out[param] = own[marker.key]
            elif marker.key in group:  # a part of a saga, aggregate...: the whole's entry
                out[param] = group[marker.key]
            elif marker.key in glb:
                out[param] = glb[marker.key]
            elif not marker.required:
                out[param] = marker.default
            else:
                raise RunContextError(component=comp.name, key=marker.key)
        return out

    def _meta_value(self, marker: MetaRef) -> Any:
        """Resolve a meta-condition from the state the workflow has now (see ``meta``)."""
        if marker.kind == "state_of":
            comp = self._g.components[marker.target]
            assert isinstance(comp, Accumulator)
            return _isolate(self._state_of(comp))
        produced = self._by_component().get(marker.target, ())
        return len(produced) if marker.kind == "fact_count" else bool(produced)

    def _state_of(self, comp: Accumulator) -> Any:
        state = self._acc_state.get(comp.name, _MISSING)
        if type(state) is FactRef:  # recovered without values: load it now
            state = self._acc_state[comp.name] = self._value(state)
        elif state is _MISSING:
            state = comp.initial_state()
            event = ev.StateInitiated(component=comp.name, scope_key="", value=state)
            self._events.append(event)
            self._fold_state(event)
        return state

    def _run_matches(self) -> None:
        while self._matches:
            for act in list(self._matches.values()):
                self._match(act)

    def _match(self, act: Activation) -> None:
        comp = act.component
        assert isinstance(comp, Rule)
        spec = comp.condition_spec
        try:
            kwargs = self._context_for(comp, spec) if spec.context else _NO_KWARGS
        except Exception as exc:  # a missing run-context key: not a question of shape
            self._fail_unprepared(act, exc)
            return
        try:
            args = self._args(comp, act.facts, spec.max_args, spec.min_args)
            matched = bool(comp.condition(*args, **kwargs))
        except _SHAPE_ERRORS:
            matched = False
        except Exception as exc:
            self._fail_unprepared(act, exc)
            return
        name = comp.name
        fid = act.facts[0].id
        event: ev.Event
        if matched:
            event = ev.ConditionSatisfied(component=name, fact_id=fid, runnable_id=act.id)
            self._events.append(event)
            self._fold_satisfied(event)
        else:
            event = ev.ConditionRejected(component=name, fact_id=fid, runnable_id=act.id)
            self._events.append(event)
            self._fold_rejected(event)

    def _hook(self, runnable: Runnable, which: str) -> bool:
        """Run a component's ``before``/``after`` hook; ``False`` when it failed the runnable.

        Annotations it returns are logged; a hook that raises fails the runnable (at
        ``before``, the failure is recorded at once: it is not handed out).
        """
        comp = self._g.components[runnable.component]
        hook = comp.before if which == "before" else comp.after
        if hook is None:
            return True
        try:
            notes = hook(runnable)
            if notes is not None and not isinstance(notes, Mapping):
                raise TypeError(
                    f"the {which} hook of {comp.name!r} returned {type(notes).__name__}: "
                    "return a dict of annotations, or None"
                )
            if notes and not _plain(notes):
                raise TypeError(
                    f"the {which} hook of {comp.name!r} returned annotations that are not "
                    "plain data (str keys; str, int, float, bool, None, lists and dicts of "
                    f"them): {notes!r:.200}"
                )
        except Exception as exc:
            runnable.fail(exc)
            if which == "before":
                self._record_failure(runnable, final=True, dispatched=False)
            return False
        if notes:
            event = ev.RunnableAnnotated(runnable.id, comp.name, which, dict(notes))
            self._events.append(event)
            self._fold_annotated(event)
        return True

    def _fail_unprepared(self, act: Activation, exc: Exception) -> None:
        runnable = Runnable(
            id=act.id,
            component=act.component.name,
            component_kind=act.component.kind,
            component_hash=act.component.hash,
            fn=None,
            args=(),
        ).fail(exc)
        self._record_failure(runnable, final=True, dispatched=False)

    def _absorbs(self, runnable: Runnable, dispatched: bool) -> bool:
        """Produce the value a component gives instead of a final failure (a saga's action
        turns it into the record that starts the compensations); ``False`` when the
        component has none, or it cannot be built, and the failure stands.

        Only final failures come here, so this costs nothing while work succeeds.
        """
        act = self._in_flight.get(runnable.id)
        if act is None or not act.component.absorbs_failures or len(act.facts) != 1:
            return False
        comp, rid, error = act.component, act.id, runnable.error
        assert error is not None
        try:
            value = comp.failure_value(self._value(act.facts[0]), error)
        except Exception:  # e.g. an input value that cannot be loaded: the failure stands
            return False
        events = self._events
        if not dispatched:  # failed while being prepared: log it as handed out first
            events.append((_DISPATCHED, rid, comp.name, runnable.attempt))
        # as apply_runnable's completed branch, which stays inline there (no extra call
        # per activation on the path every successful runnable takes)
        fact = Fact(rid, value, comp.name, comp.hash, (act.facts[0].id,), act.scope)
        events.append(fact)
        self._add_fact(fact)
        events.append((_COMPLETED, rid, comp.name, runnable.duration))
        del self._in_flight[rid]
        self.step_count += 1
        if self._acc_queue and comp.name in self._acc_queue:
            self._advance_acc(comp)
        runnable.result, runnable.status, runnable.error = value, "completed", None
        return True
