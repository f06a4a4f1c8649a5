"""The constructors users build components with: ``rf.step``, ``rf.rule``, ``rf.filter``...

Each takes a function and returns a component (:mod:`runeflow.model.components`). Those that
take a function also work as decorators, bare or with options::

    @rf.step
    def price(order): ...

    @rf.step(name="with_tax", policy=rf.Policy(max_retries=2))
    def tax(amount): ...

A decorated function stays callable as itself (``price(order)`` calls the function, so it
can be unit-tested), and is a component that ``wf.add(price)`` accepts. A module-level
function decorated this way is still found by name, so the ``processes`` executor can send
it to another process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from runeflow.model.components import (
    Accumulator,
    AwaitEvent,
    Component,
    Hook,
    Map,
    Reduce,
    Rule,
    StateMachine,
    Step,
)
from runeflow.model.policy import Policy

__all__ = [
    "accumulator",
    "await_event",
    "filter",
    "map",
    "reduce",
    "rule",
    "state_machine",
    "step",
]

C = TypeVar("C", bound=Component)
Fn = Callable[..., Any]


def _finish(component: C, policy: Policy | None, before: Hook | None, after: Hook | None) -> C:
    if policy is not None:
        component.with_policy(policy)
    if before is not None or after is not None:
        component.with_hooks(before, after)
    return component


@overload
def step(
    fn: Fn,
    *,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Step: ...


@overload
def step(
    fn: None = None,
    *,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Callable[[Fn], Step]: ...


def step(
    fn: Fn | None = None,
    *,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Step | Callable[[Fn], Step]:
    """Wrap a function (plain or ``async def``) as a step; also a decorator.

    A step with one parent gets the parent's value; one that takes no parameters is called
    without arguments; one that takes ``n > 1`` parameters under a single parent gets the
    parent's value unpacked. Under a join it gets one value per parent. ``policy`` says how
    runners run it (retries, timeout, fallback...), wherever the definition is run;
    ``before``/``after`` are hooks (see ``Component.with_hooks``).
    """
    if fn is None:
        return lambda f: step(f, name=name, policy=policy, before=before, after=after)
    component = Step(fn, name)
    if policy is not None or before is not None or after is not None:
        component.with_policy(policy).with_hooks(before, after)
    return component


@overload
def rule(
    *,
    condition: Fn,
    reaction: Fn,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Rule: ...


@overload
def rule(
    *,
    condition: Fn,
    reaction: None = None,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Callable[[Fn], Rule]: ...


def rule(
    *,
    condition: Fn,
    reaction: Fn | None = None,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Rule | Callable[[Fn], Rule]:
    """Build a rule: ``reaction`` runs on inputs for which ``condition`` is true.

    Without ``reaction`` it is a decorator for the reaction:
    ``@rf.rule(condition=lambda o: o["total"] > 100)``. The condition may read the run
    context (``rf.context``) and the workflow's state (``rf.state_of``, ``rf.step_ran``,
    ``rf.fact_count``) through parameter defaults. ``policy`` and the hooks apply to the
    reaction (conditions run while planning).
    """
    if reaction is None:
        return lambda f: rule(
            condition=condition, reaction=f, name=name, policy=policy, before=before, after=after
        )
    return _finish(Rule(condition, reaction, name), policy, before, after)


@overload
def filter(
    predicate: Fn,
    *,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Rule: ...


@overload
def filter(
    predicate: None = None,
    *,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Callable[[Fn], Rule]: ...


def filter(
    predicate: Fn | None = None,
    *,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Rule | Callable[[Fn], Rule]:
    """Pass on the values ``predicate`` accepts, unchanged; drop the others.

    A rule whose reaction is the identity, named after the predicate (``@rf.filter`` on
    ``def is_big(order)`` makes a component ``is_big``; calling it calls the predicate).
    Inside a map's fan-out, a value it drops is left out of the reduce below.
    """
    if predicate is None:
        return lambda f: filter(f, name=name, policy=policy, before=before, after=after)
    return _finish(Rule(predicate, None, name), policy, before, after)


def map(
    fn: Any = None,
    *,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Map:
    """Fan out a collection: one fact per element, through ``fn`` (or a list of functions).

    ``policy`` applies to each element's runnable. ``@rf.map`` decorates a function; with
    options, write ``rf.map(fn, name=...)`` (``rf.map(name=...)`` alone is a map that
    passes elements through unchanged).
    """
    return _finish(Map(fn, name), policy, before, after)


@overload
def reduce(
    fn: Fn,
    initial: Any = None,
    *,
    map: str,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Reduce: ...


@overload
def reduce(
    fn: None = None,
    initial: Any = None,
    *,
    map: str,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Callable[[Fn], Reduce]: ...


def reduce(
    fn: Fn | None = None,
    initial: Any = None,
    *,
    map: str,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Reduce | Callable[[Fn], Reduce]:
    """Fold the elements of a fan-out of the map named ``map``, in order; also a decorator
    (``@rf.reduce(initial=0, map="lines")``)."""
    if fn is None:
        return lambda f: reduce(
            f, initial, map=map, name=name, policy=policy, before=before, after=after
        )
    return _finish(Reduce(fn, initial, map, name), policy, before, after)


@overload
def accumulator(
    reducer: Fn,
    *,
    init: Any = None,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Accumulator: ...


@overload
def accumulator(
    reducer: None = None,
    *,
    init: Any = None,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Callable[[Fn], Accumulator]: ...


def accumulator(
    reducer: Fn | None = None,
    *,
    init: Any = None,
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Accumulator | Callable[[Fn], Accumulator]:
    """Carry state across inputs: ``state = reducer(value, state)``; also a decorator
    (``@rf.accumulator(init=0)``)."""
    if reducer is None:
        return lambda f: accumulator(
            f, init=init, name=name, policy=policy, before=before, after=after
        )
    return _finish(Accumulator(reducer, init, name), policy, before, after)


@overload
def state_machine(
    *,
    init: Any,
    reducer: Fn,
    reactors: Sequence[Component | Fn] = (),
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> StateMachine: ...


@overload
def state_machine(
    *,
    init: Any,
    reducer: None = None,
    reactors: Sequence[Component | Fn] = (),
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> Callable[[Fn], StateMachine]: ...


def state_machine(
    *,
    init: Any,
    reducer: Fn | None = None,
    reactors: Sequence[Component | Fn] = (),
    name: str | None = None,
    policy: Policy | None = None,
    before: Hook | None = None,
    after: Hook | None = None,
) -> StateMachine | Callable[[Fn], StateMachine]:
    """An accumulator plus reactor rules that see each new state; without ``reducer``, a
    decorator for it.

    ``policy`` and the hooks apply to the reducer; give reactors their own with
    ``rf.rule(policy=...)``.
    """
    if reducer is None:
        return lambda f: state_machine(
            init=init,
            reducer=f,
            reactors=reactors,
            name=name,
            policy=policy,
            before=before,
            after=after,
        )
    machine = StateMachine(reducer, init, reactors, name)
    return _finish(machine, policy, before, after)


def await_event(*, name: str, events: Sequence[str], timeout: float | None = None) -> AwaitEvent:
    """A step that waits for one of ``events`` (or for ``timeout`` seconds)."""
    return AwaitEvent(name, events, timeout)
