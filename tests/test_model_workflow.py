"""Building, validation, the three-phase API, fresh(), waits and runnables."""

from __future__ import annotations

import pickle

import pytest

import runeflow as rf


def double(x: int) -> int:
    return x * 2


def add_one(x: int) -> int:
    return x + 1


# --- definition errors ----------------------------------------------------------------------


def test_unknown_parent_is_named() -> None:
    wf = rf.workflow(name="w").add(rf.step(double))
    with pytest.raises(rf.WorkflowDefinitionError, match=r"unknown parent 'dubble' for 'add_one'"):
        wf.add(rf.step(add_one), to="dubble")


def test_duplicate_name_is_refused() -> None:
    wf = rf.workflow(name="w").add(rf.step(double, name="x"))
    with pytest.raises(rf.WorkflowDefinitionError, match="duplicate component name 'x'"):
        wf.add(rf.step(add_one, name="x"))


def test_auto_named_duplicates_get_a_suffix() -> None:
    wf = rf.workflow(name="w").add(rf.step(double)).add(rf.step(double), to="double")
    assert list(wf.components) == ["double", "double_2"]
    wf.react_until_satisfied(3)
    assert wf.raw_productions("double_2") == [12]


def test_self_parent_is_a_cycle() -> None:
    wf = rf.workflow(name="w")
    with pytest.raises(rf.WorkflowDefinitionError, match="cycle"):
        wf.add(rf.step(double, name="d"), to="d")


def test_connect_refuses_a_cycle() -> None:
    wf = (
        rf.workflow(name="w")
        .add(rf.step(double, name="a"))
        .add(rf.step(add_one, name="b"), to="a")
        .add(rf.step(lambda x: x, name="c"), to="b")
    )
    with pytest.raises(rf.WorkflowDefinitionError, match=r"would make a cycle"):
        wf.connect("c", "a")


def test_connect_makes_a_join_and_keeps_logs_replayable() -> None:
    joined = rf.workflow(name="j").add(rf.step(double, name="d"))
    joined.add(rf.step(lambda a, b: a * b, name="m"), to="d")
    joined.add(rf.step(add_one, name="i"))
    with pytest.raises(rf.WorkflowDefinitionError, match="cycle"):
        joined.connect("m", "m")
    joined.connect("i", "m")  # m now joins d and i, although i was added after m
    joined.react_until_satisfied(3)
    assert joined.raw_productions("m") == [24]
    names = [e.name for e in joined.event_log() if isinstance(e, rf.events.ComponentAdded)]
    assert names.index("i") < names.index("m")  # parents come first in the build log
    again = rf.Workflow.from_events(joined.event_log())
    assert again.raw_productions("m") == [24]


def test_join_arity_must_fit_the_parents() -> None:
    wf = rf.workflow(name="w").add(rf.step(double, name="a")).add(rf.step(add_one, name="b"))
    with pytest.raises(rf.WorkflowDefinitionError, match=r"joins 2 parents .* takes 1 argument"):
        wf.add(rf.step(lambda x: x, name="j"), to=["a", "b"])
    wf.add(rf.step(lambda *xs: sum(xs), name="ok"), to=["a", "b"])  # *args fits any count


def test_reduce_needs_an_existing_map_above_it() -> None:
    wf = rf.workflow(name="w").add(rf.step(double, name="s"))
    with pytest.raises(rf.WorkflowDefinitionError, match="no map of that name"):
        wf.add(rf.reduce(lambda x, a: a, 0, map="s", name="r"), to="s")
    wf.add(rf.map(name="m"))
    with pytest.raises(rf.WorkflowDefinitionError, match="must be placed under map 'm'"):
        wf.add(rf.reduce(lambda x, a: a, 0, map="m", name="r"), to="s")


def test_root_is_reserved_and_names_must_be_strings() -> None:
    with pytest.raises(rf.WorkflowDefinitionError, match="reserved"):
        rf.step(double, name="root")
    with pytest.raises(rf.WorkflowDefinitionError, match="non-empty"):
        rf.workflow(name="")


def test_async_conditions_are_refused() -> None:
    async def cond(x: int) -> bool:
        return True

    with pytest.raises(rf.WorkflowDefinitionError, match="plain functions"):
        rf.rule(condition=cond, reaction=double)


def test_await_event_needs_events() -> None:
    with pytest.raises(rf.WorkflowDefinitionError, match="events="):
        rf.await_event(name="wait", events=[])
    with pytest.raises(rf.WorkflowDefinitionError, match="positive"):
        rf.await_event(name="wait", events=["go"], timeout=-1)


def test_workflow_builder_accepts_trees_and_plain_functions() -> None:
    wf = rf.workflow(name="tree", steps=[(double, [add_one, (rf.step(abs), [str])])])
    assert [(n, wf.graph.parents[n]) for n in wf.components] == [
        ("double", ("root",)),
        ("add_one", ("double",)),
        ("abs", ("double",)),
        ("str", ("abs",)),
    ]
    wf.react_until_satisfied(-2)
    assert wf.results() == {"add_one": -3, "str": "4"}


# --- the three phases -----------------------------------------------------------------------


def test_hand_driven_three_phase_loop() -> None:
    wf = rf.workflow(name="w").add(rf.step(double)).add(rf.step(add_one), to="double")
    wf.plan_eagerly(5)
    assert wf.is_runnable()
    assert [c.name for c, _ in wf.next_runnables()] == ["double"]
    cycles = 0
    while wf.is_runnable():
        runnables = wf.prepare_for_dispatch()
        assert wf.prepare_for_dispatch() == []  # nothing is handed out twice
        for r in runnables:
            wf.apply_runnable(rf.execute_runnable(r))
        wf.plan_eagerly()
        cycles += 1
    assert cycles == 2
    assert wf.raw_productions() == [10, 11]


def test_react_runs_one_generation() -> None:
    wf = rf.workflow(name="w").add(rf.step(double)).add(rf.step(add_one), to="double")
    wf.react(5)
    assert wf.raw_productions() == [10]
    wf.react()
    assert wf.raw_productions() == [10, 11]


def test_applying_twice_has_no_further_effect_and_strangers_are_refused() -> None:
    wf = rf.workflow(name="w").add(rf.step(double))
    wf.plan_eagerly(1)
    [r] = wf.prepare_for_dispatch()
    executed = rf.execute_runnable(r)
    wf.apply_runnable(executed).apply_runnable(executed)
    assert wf.raw_productions() == [2]
    other = rf.workflow(name="o").add(rf.step(double)).plan_eagerly(9)
    [stranger] = other.prepare_for_dispatch()
    stranger.id = "not-from-here"
    with pytest.raises(rf.InstanceStateError, match="not in flight"):
        wf.apply_runnable(rf.execute_runnable(stranger))


def test_unexecuted_runnable_cannot_be_applied() -> None:
    wf = rf.workflow(name="w").add(rf.step(double)).plan_eagerly(1)
    [r] = wf.prepare_for_dispatch()
    with pytest.raises(rf.InstanceStateError, match="execute_runnable"):
        wf.apply_runnable(r)


def test_runnables_are_self_contained_and_picklable() -> None:
    wf = rf.workflow(name="w").add(rf.step(double)).plan_eagerly(21)
    [r] = wf.prepare_for_dispatch()
    del wf
    copy = pickle.loads(pickle.dumps(r))
    done = rf.execute_runnable(copy)
    assert done.status == "completed"
    assert done.result == 42
    assert done.id == r.id


def test_runnable_ids_are_stable_across_instances_of_one_input_fact() -> None:
    definition = rf.workflow(name="w").add(rf.step(double))
    a = definition.fresh().plan_eagerly(1)
    b = rf.Workflow.from_events(a.event_log())
    assert [r.id for r in a.prepare_for_dispatch()] == [r.id for r in b.prepare_for_dispatch()]


def test_fresh_shares_structure_but_not_state() -> None:
    definition = rf.workflow(name="w").add(rf.step(double))
    one, two = definition.fresh(), definition.fresh()
    one.react_until_satisfied(1)
    two.react_until_satisfied(100)
    assert one.raw_productions() == [2]
    assert two.raw_productions() == [200]
    assert definition.raw_productions() == []
    assert one.graph is two.graph is definition.graph
    two.add(rf.step(add_one), to="double")  # copy-on-write: the others are unchanged
    assert "add_one" not in definition.components
    assert "add_one" not in one.components


def test_failed_runnable_records_error_and_traceback() -> None:
    def bad(x: int) -> int:
        return x // 0

    wf = rf.workflow(name="w").add(rf.step(bad)).plan_eagerly(1)
    [r] = wf.prepare_for_dispatch()
    executed = rf.execute_runnable(r)
    assert executed.status == "failed"
    assert executed.error is not None
    assert executed.error.type == "builtins.ZeroDivisionError"
    assert "x // 0" in executed.error.traceback
    wf.apply_runnable(executed)
    assert wf.counts()["failures"] == 1


# --- waits ------------------------------------------------------------------------------------


def approval_flow() -> rf.Workflow:
    return (
        rf.workflow(name="approval")
        .add(rf.step(lambda order: {**order, "checked": True}, name="check"))
        .add(rf.await_event(name="manager", events=["approved", "rejected"]), to="check")
        .add(
            rf.rule(
                condition=lambda s: s.event == "approved",
                reaction=lambda s: f"shipped {s.input['id']}",
                name="ship",
            ),
            to="manager",
        )
        .add(
            rf.rule(
                condition=lambda s: s.event == "rejected",
                reaction=lambda s: f"refunded {s.input['id']} ({s.payload})",
                name="refund",
            ),
            to="manager",
        )
    )


def test_await_event_parks_until_delivered() -> None:
    wf = approval_flow().react_until_satisfied({"id": 7})
    [wait] = wf.open_waits()
    assert wait.component == "manager"
    assert not wf.is_runnable()
    fact = wf.deliver_event("approved")
    assert isinstance(fact.value, rf.Signal)
    assert fact.value.event == "approved"
    wf.react_until_satisfied()
    assert wf.results() == {"ship": "shipped 7", "refund": None}
    assert wf.open_waits() == []


def test_the_other_branch_and_payload() -> None:
    wf = approval_flow().react_until_satisfied({"id": 8})
    wf.deliver_event("rejected", payload="too expensive", step="manager")
    wf.react_until_satisfied()
    assert wf.results() == {"ship": None, "refund": "refunded 8 (too expensive)"}


def test_undeclared_event_and_no_wait_are_errors_that_change_nothing() -> None:
    wf = approval_flow().react_until_satisfied({"id": 9})
    before = len(wf.event_log())
    with pytest.raises(rf.InstanceStateError, match=r"'shipped' is not accepted.*approved"):
        wf.deliver_event("shipped")
    with pytest.raises(rf.InstanceStateError, match="no open wait on step 'other'"):
        wf.deliver_event("approved", step="other")
    assert len(wf.event_log()) == before
    wf.deliver_event("approved")
    with pytest.raises(rf.InstanceStateError, match="no open wait"):
        wf.deliver_event("approved")


def test_two_parallel_waits_resume_independently() -> None:
    wf = (
        rf.workflow(name="two_waits")
        .add(rf.await_event(name="legal", events=["ok"]))
        .add(rf.await_event(name="finance", events=["ok"]))
        .add(rf.step(lambda a, b: "both", name="done"), to=["legal", "finance"])
    )
    wf.react_until_satisfied("contract")
    assert sorted(w.component for w in wf.open_waits()) == ["finance", "legal"]
    wf.deliver_event("ok", step="finance")
    wf.react_until_satisfied()
    assert wf.raw_productions("done") == []
    wf.deliver_event("ok", step="legal")
    wf.react_until_satisfied()
    assert wf.raw_productions("done") == ["both"]


def test_await_timeout_accepts_the_timeout_event() -> None:
    wait = rf.await_event(name="w", events=["go"], timeout=30)
    assert wait.events == ("go", "timeout")
    wf = rf.workflow(name="t").add(wait).react_until_satisfied(1)
    fact = wf.deliver_event("timeout")
    assert fact.value.timed_out
