"""Property tests on random DAGs: the order in which results are applied does not matter."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import runeflow as rf


def make_op(k: int, c: int) -> Callable[..., int]:
    def op(*xs: int) -> int:
        return (sum(xs) * k + c) % 997

    return op


def make_condition(m: int) -> Callable[[int], bool]:
    return lambda x: x % m != 0


@st.composite
def dags(draw: st.DrawFn) -> rf.Workflow:
    n = draw(st.integers(min_value=1, max_value=14))
    wf = rf.workflow(name="random")
    names: list[str] = []
    for i in range(n):
        name = f"n{i}"
        kind = draw(st.sampled_from(["step", "step", "join", "rule", "map"]))
        k, c = draw(st.integers(1, 9)), draw(st.integers(0, 50))
        if kind == "join" and len(names) >= 2:
            parents = draw(st.lists(st.sampled_from(names), min_size=2, max_size=3, unique=True))
            wf.add(rf.step(make_op(k, c), name=name), to=parents)
        elif kind == "rule":
            parent = draw(st.sampled_from([None, *names]))
            m = draw(st.integers(2, 5))
            wf.add(
                rf.rule(condition=make_condition(m), reaction=make_op(k, c), name=name), to=parent
            )
        elif kind == "map" and names:
            parent = draw(st.sampled_from(names))
            spread = draw(st.integers(0, 3))
            wf.add(
                rf.step(lambda x, s=spread: [x + j for j in range(s)], name=f"{name}_list"),
                to=parent,
            )
            wf.add(rf.map(make_op(k, c), name=name), to=f"{name}_list")
            wf.add(rf.reduce(lambda x, acc: [*acc, x], [], map=name, name=f"{name}_all"), to=name)
            names.append(f"{name}_all")
        else:
            parent = draw(st.sampled_from([None, *names]))
            wf.add(rf.step(make_op(k, c), name=name), to=parent)
        names.append(name)
    return wf


def productions(wf: rf.Workflow) -> list[tuple[str, str, Any]]:
    return sorted((f.component, f.id, repr(f.value)) for f in wf.productions())


@settings(max_examples=150, deadline=None)
@given(definition=dags(), value=st.integers(0, 1000), rnd=st.randoms(use_true_random=False))
def test_shuffled_three_phase_loop_matches_react_until_satisfied(
    definition: rf.Workflow, value: int, rnd: random.Random
) -> None:
    inline = definition.fresh().plan_eagerly(value)
    by_hand = rf.Workflow.from_events(inline.event_log())  # the same input fact id
    inline.react_until_satisfied()

    while by_hand.is_runnable():
        runnables = by_hand.prepare_for_dispatch()
        rnd.shuffle(runnables)
        # apply a random prefix now, the rest after the next prepare
        cut = rnd.randint(0, len(runnables))
        for r in runnables[:cut]:
            by_hand.apply_runnable(rf.execute_runnable(r))
        by_hand.plan_eagerly()
        extra = by_hand.prepare_for_dispatch()
        rest = runnables[cut:] + extra
        rnd.shuffle(rest)
        for r in rest:
            by_hand.apply_runnable(rf.execute_runnable(r))
        by_hand.plan_eagerly()

    assert productions(by_hand) == productions(inline)
    assert by_hand.in_flight() == []


@settings(max_examples=100, deadline=None)
@given(definition=dags(), value=st.integers(0, 1000), stop=st.integers(0, 40))
def test_replay_at_any_point_continues_to_the_same_end(
    definition: rf.Workflow, value: int, stop: int
) -> None:
    wf = definition.fresh().plan_eagerly(value)
    for _ in range(stop):
        if not wf.is_runnable():
            break
        runnables = wf.prepare_for_dispatch()
        if runnables:
            wf.apply_runnable(rf.execute_runnable(runnables[0]))  # others stay in flight
    rebuilt = rf.Workflow.from_events(wf.event_log())
    assert productions(rebuilt) == productions(wf)
    assert sorted(rebuilt.in_flight()) == sorted(wf.in_flight())
    for w in (wf, rebuilt):
        w.requeue_in_flight()
        w.react_until_satisfied()
    assert productions(rebuilt) == productions(wf)
