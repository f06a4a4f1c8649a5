"""Authoring: decorators, rf.filter, per-component hooks, merging and removing components."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf
from runeflow.model import events as ev

# --- decorators ----------------------------------------------------------------------------


@rf.step
def double(x: int) -> int:
    return x * 2


@rf.step(name="plus_one", policy=rf.Policy(max_retries=2))
def increment(x: int) -> int:
    return x + 1


@rf.filter
def is_big(x: int) -> bool:
    return x > 10


@rf.accumulator(init=0)
def running_total(x: int, total: int) -> int:
    return total + x


@rf.rule(condition=lambda x: x % 2 == 0)
def halve(x: int) -> int:
    return x // 2


def test_a_decorated_function_is_still_callable_as_itself() -> None:
    assert double(21) == 42
    assert increment(1) == 2
    assert is_big(11) is True and is_big(3) is False
    assert running_total(5, 10) == 15
    assert halve(8) == 4
    assert isinstance(double, rf.Step) and double.name == "double"
    assert increment.name == "plus_one" and increment.policy == rf.Policy(max_retries=2)
    assert isinstance(is_big, rf.Rule) and is_big.name == "is_big"


def test_decorated_functions_are_components() -> None:
    wf = (
        rf.workflow(name="decorated")
        .add(double)
        .add(increment, to="double")
        .add(is_big, to="plus_one")
        .add(running_total, to="is_big")
        .add(halve)
    )
    wf.react_until_satisfied(3)  # 6, 7: not big; 3 is odd
    wf.react_until_satisfied(8)  # 16, 17: big, total 17; 8 halves
    assert wf.results(["plus_one", "is_big", "running_total", "halve"], all=True) == {
        "plus_one": [7, 17],
        "is_big": [17],
        "running_total": [17],
        "halve": [4],
    }


def test_decorated_module_level_functions_still_pickle(tmp_path: Path) -> None:
    module = tmp_path / "decorated_flow.py"
    module.write_text(
        textwrap.dedent(
            """
            import runeflow as rf

            @rf.step
            def triple(x):
                return x * 3

            @rf.step(name="then_add")
            def add_one(x):
                return x + 1

            def build():
                return rf.workflow(name="d").add(triple).add(add_one, to="triple")
            """
        )
    )
    script = textwrap.dedent(
        """
        import runeflow as rf, decorated_flow as m
        with rf.Runner(executor="processes", workflows=[m.build]) as runner:
            runner.start_instance(m.build, 5, id="x")
            runner.wait("x", timeout=60)
            print(runner.get_results("x"), m.triple(2), m.add_one(2))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[15,", "16]", "6", "3"]


def test_runnables_of_decorated_functions_pickle_in_process() -> None:
    wf = rf.workflow(name="d").add(double).plan_eagerly(4)
    (runnable,) = wf.prepare_for_dispatch()
    copy = pickle.loads(pickle.dumps(runnable))
    assert copy.execute().result == 8


def test_filter_passes_what_matches_unchanged() -> None:
    wf = (
        rf.workflow(name="f")
        .add(rf.map(name="items"))
        .add(rf.filter(lambda x: x["qty"] > 0, name="in_stock"), to="items")
        .add(
            rf.reduce(lambda x, acc: [*acc, x["sku"]], [], map="items", name="skus"),
            to="in_stock",
        )
    )
    items = [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 0}, {"sku": "c", "qty": 2}]
    wf.react_until_satisfied(items)
    assert wf.raw_productions("in_stock") == [{"sku": "a", "qty": 1}, {"sku": "c", "qty": 2}]
    assert wf.results(["skus"]) == {"skus": ["a", "c"]}


# --- hooks ---------------------------------------------------------------------------------


def test_hooks_observe_and_annotate_runnables_and_are_logged() -> None:
    seen: list[tuple[str, str, Any]] = []

    def before(r: rf.Runnable) -> dict[str, Any]:
        seen.append(("before", r.status, r.args))
        return {"queued_with": r.args[0]}

    def after(r: rf.Runnable) -> dict[str, Any] | None:
        seen.append(("after", r.status, r.result))
        return {"result_was": r.result} if r.result > 5 else None

    wf = rf.workflow(name="hooked").add(
        rf.step(lambda x: x * 2, name="double", before=before, after=after)
    )
    wf.react_until_satisfied(2)
    wf.react_until_satisfied(4)
    assert seen == [
        ("before", "prepared", (2,)),
        ("after", "completed", 4),
        ("before", "prepared", (4,)),
        ("after", "completed", 8),
    ]
    notes = [e for e in wf.event_log() if isinstance(e, ev.RunnableAnnotated)]
    assert [(e.hook, e.annotations) for e in notes] == [
        ("before", {"queued_with": 2}),
        ("before", {"queued_with": 4}),
        ("after", {"result_was": 8}),
    ]
    assert wf.annotations(notes[-1].runnable_id) == {"queued_with": 4, "result_was": 8}
    rebuilt = rf.Workflow.from_events(wf.event_log())
    assert rebuilt.annotations(notes[-1].runnable_id) == {"queued_with": 4, "result_was": 8}
    assert len(seen) == 4  # replay runs no hook
    restored = rf.Workflow.from_snapshot(wf.snapshot(), definition=wf)
    assert restored.annotations(notes[0].runnable_id) == {"queued_with": 2}


def test_a_hook_that_raises_fails_its_runnable() -> None:
    def refuse(r: rf.Runnable) -> None:
        raise PermissionError("not today")

    def bad_return(r: rf.Runnable) -> Any:
        return ["not", "a", "dict"]

    def not_plain(r: rf.Runnable) -> Any:
        return {"when": object()}

    wf = (
        rf.workflow(name="h")
        .add(rf.step(lambda x: x, name="a", before=refuse))
        .add(rf.step(lambda x: x, name="b", after=bad_return))
        .add(rf.step(lambda x: x, name="below_a"), to="a")
        .add(rf.step(lambda x: x, name="c", before=not_plain))
    )
    wf.react_until_satisfied(1)
    failed = {f.component: f.error for f in wf.failures()}
    assert failed["a"].type == "builtins.PermissionError"
    assert "returned list: return a dict of annotations, or None" in failed["b"].message
    assert "annotations that are not plain data" in failed["c"].message
    assert wf.raw_productions() == []  # below_a skipped, b's result discarded
    assert rf.Workflow.from_events(wf.event_log()).failures() == wf.failures()


def test_hooks_attach_to_existing_components_and_run_under_the_runner() -> None:
    calls: list[str] = []
    wf = rf.workflow(name="h").add(rf.step(lambda x: x + 1, name="inc"))
    wf.hook("inc", after=lambda r: calls.append(r.component) or {"seen": True})
    with pytest.raises(rf.WorkflowDefinitionError, match="after= must be a function"):
        wf.hook("inc", after=3)  # type: ignore[arg-type]
    with rf.Runner(executor="threads") as runner:
        runner.start_instance(wf, 1, id="h1")
        runner.wait("h1", timeout=10)
        assert runner.get_results("h1") == [2]
    assert calls == ["inc"]


def test_hooking_a_workflow_leaves_other_workflows_and_the_component_alone() -> None:
    calls: list[int] = []
    definition = rf.workflow(name="d").add(double)
    hooked = definition.fresh().hook("double", before=lambda r: calls.append(r.args[0]))
    hooked.react_until_satisfied(1)
    definition.fresh().react_until_satisfied(2)
    rf.workflow(name="other").add(double).react_until_satisfied(3)
    assert calls == [1]
    assert double.before is None
    hooked.fresh().react_until_satisfied(4)  # instances of the hooked workflow run it
    assert calls == [1, 4]


def test_hooks_are_not_part_of_the_hash() -> None:
    def note(r: rf.Runnable) -> dict[str, Any]:
        return {"seen": r.component}

    def build(hooks: dict[str, Any]) -> rf.Workflow:
        return (
            rf.workflow(name="h")
            .add(rf.step(_triple, name="triple", **hooks))
            .add(rf.map(_triple, name="each", **hooks), to="triple")
        )

    plain, before, both = build({}), build({"before": note}), build({"before": note, "after": note})
    for wf in (before, both):
        for name in ("triple", "each"):
            assert wf.graph.components[name].hash == plain.graph.components[name].hash
        assert wf.definition_hash() == plain.definition_hash()
    hooked_later = plain.fresh().hook("each", after=lambda r: {"late": True})
    assert hooked_later.definition_hash() == plain.definition_hash()

    # the same facts, with the same ids, whichever hooks ran
    ran = [wf.fresh().react_until_satisfied([1, 2], key="order-1") for wf in (plain, both)]
    ids = [[f.id for f in wf.productions()] for wf in ran]
    assert ids[0] == ids[1] and len(ids[0]) == 3
    assert any(isinstance(e, ev.RunnableAnnotated) for e in ran[1].event_log())
    # a log written with hooks replays against the definition without them, and back
    assert rf.Workflow.from_events(ran[1].event_log(), definition=plain).productions() == (
        ran[0].productions()
    )
    replayed = rf.Workflow.from_events(ran[0].event_log(), definition=both)
    assert replayed.raw_productions() == [[3, 6], 9, 18]
    assert plain.fresh().merge(both).definition_hash() == plain.definition_hash()  # identical


def _triple(x: Any) -> Any:
    return [v * 3 for v in x] if isinstance(x, list) else x * 3


# --- merge and remove ----------------------------------------------------------------------


def pricing() -> rf.Workflow:
    return (
        rf.workflow(name="pricing", outputs={"total": "total"})
        .add(rf.step(lambda o: o["qty"] * o["unit"], name="subtotal"))
        .add(rf.step(lambda s: round(s * 1.2, 2), name="total"), to="subtotal")
    )


def shipping() -> rf.Workflow:
    return (
        rf.workflow(name="shipping", outputs={"ship": "ship"}, policies={"ship": rf.Policy()})
        .add(rf.step(lambda o: o["qty"] * o["unit"], name="subtotal"))
        .add(rf.step(lambda s: 0 if s > 50 else 5, name="ship"), to="subtotal")
    )


def test_merge_combines_components_ports_and_policies() -> None:
    wf = pricing().merge(shipping())
    assert list(wf.components) == ["subtotal", "total", "ship"]
    assert wf.outputs == {"total": "total", "ship": "ship"}
    assert wf.graph.policies is not None and "ship" in wf.graph.policies.table()
    assert wf.react_until_satisfied({"qty": 2, "unit": 30}).results() == {
        "total": 72.0,
        "ship": 0,
    }
    assert wf.fresh().react_until_satisfied({"qty": 1, "unit": 1}).results() == {
        "total": 1.2,
        "ship": 5,
    }


def test_merge_refuses_a_same_named_component_that_differs_and_changes_nothing() -> None:
    other = rf.workflow(name="other").add(rf.step(lambda o: o["qty"], name="subtotal"))
    wf = pricing()
    before = wf.definition_hash()
    with pytest.raises(rf.WorkflowDefinitionError, match="both have a component 'subtotal'"):
        wf.merge(other)
    assert wf.definition_hash() == before
    moved = (
        rf.workflow(name="moved")
        .add(rf.step(str, name="x"))
        .add(rf.step(lambda o: o["qty"] * o["unit"], name="subtotal"), to="x")
    )
    with pytest.raises(rf.WorkflowDefinitionError, match="its parents are"):
        pricing().merge(moved)
    clash = rf.workflow(name="clash", outputs={"total": "other"}).add(rf.step(str, name="other"))
    with pytest.raises(rf.WorkflowDefinitionError, match="output port 'total'"):
        pricing().merge(clash)
    with pytest.raises(rf.UsageError):
        pricing().merge("shipping")  # type: ignore[arg-type]


def test_merge_mid_run_is_logged_and_replays() -> None:
    wf = pricing().react_until_satisfied({"qty": 1, "unit": 10})
    wf.merge(shipping()).react_until_satisfied({"qty": 1, "unit": 100})
    rebuilt = rf.Workflow.from_events(wf.event_log())
    assert rebuilt.results() == wf.results() == {"total": 120.0, "ship": 0}


def test_remove_takes_components_out_with_their_edges() -> None:
    wf = pricing().merge(shipping())
    with pytest.raises(rf.WorkflowDefinitionError, match="it feeds \\['total', 'ship'\\]"):
        wf.remove("subtotal")
    with pytest.raises(rf.WorkflowDefinitionError, match="output port"):
        wf.remove("ship")
    with pytest.raises(rf.WorkflowDefinitionError, match="has no such component"):
        wf.remove("nope")
    plain = rf.workflow(name="p").add(rf.step(str, name="a")).add(rf.step(str, name="b"), to="a")
    plain.remove("b")
    assert list(plain.components) == ["a"] and plain.graph.children["a"] == []
    plain.remove("a")
    assert plain.react_until_satisfied(1).raw_productions() == []


def test_remove_is_refused_while_the_component_has_pending_work() -> None:
    wf = (
        rf.workflow(name="p")
        .add(rf.step(lambda x: x, name="a"))
        .add(rf.await_event(name="wait", events=["go"]), to="a")
        .add(rf.step(lambda s: s.event, name="after"), to="wait")
    )
    wf.plan_eagerly(1)
    with pytest.raises(rf.InstanceStateError, match="'a': ready to run"):
        wf.remove("a", "wait", "after")
    wf.react_until_satisfied()
    with pytest.raises(rf.InstanceStateError, match="'wait': an open wait"):
        wf.remove("wait", "after")
    wf.deliver_event("go")
    wf.react_until_satisfied()
    wf.remove("wait", "after")  # nothing pending now
    assert list(wf.components) == ["a"]
    rebuilt = rf.Workflow.from_events(wf.event_log())
    assert list(rebuilt.components) == ["a"]
    assert rebuilt.productions_by_component() == wf.productions_by_component()
    assert [e.name for e in wf.event_log() if isinstance(e, ev.ComponentRemoved)] == [
        "after",
        "wait",
    ]


def test_remove_mid_run_replays_from_a_stored_log(tmp_path: Path) -> None:
    def build() -> rf.Workflow:
        return (
            rf.workflow(name="r")
            .add(rf.step(lambda x: x + 1, name="a"))
            .add(rf.step(lambda x: x * 2, name="b"), to="a")
        )

    wf = build().react_until_satisfied(1)
    store = rf.SQLiteStore(tmp_path / "r.db")
    store.create("r1", definition_name="r", definition_hash=wf.definition_hash())
    store.append("r1", wf.uncommitted_events())
    wf.remove("b").react_until_satisfied(5)
    store.append("r1", wf.uncommitted_events())
    rebuilt = rf.Workflow.from_events(store.stream("r1"), definition=build)
    assert list(rebuilt.components) == ["a"]
    assert rebuilt.raw_productions() == wf.raw_productions() == [2, 4, 6]


def test_remove_and_merge_on_an_instance_loaded_from_a_store_are_logged(tmp_path: Path) -> None:
    from runeflow.recovery import load_workflow

    def build() -> rf.Workflow:
        return (
            rf.workflow(name="r")
            .add(rf.step(lambda x: x + 1, name="a"))
            .add(rf.step(lambda x: x * 2, name="b"), to="a")
        )

    def build_with_c() -> rf.Workflow:
        return build().merge(rf.workflow(name="c").add(rf.step(lambda x: -x, name="c")))

    store = rf.SQLiteStore(tmp_path / "loaded.db")
    wf = build().react_until_satisfied(1)
    store.create("r2", definition_name="r", definition_hash=wf.definition_hash())
    store.append("r2", wf.uncommitted_events())
    loaded = load_workflow(store, "r2", build)  # keeps no events in memory
    loaded.remove("b").merge(rf.workflow(name="c").add(rf.step(lambda x: -x, name="c")))
    loaded.react_until_satisfied(5)
    store.append("r2", loaded.uncommitted_events())
    rebuilt = rf.Workflow.from_events(store.stream("r2"), definition=build_with_c)
    assert list(rebuilt.components) == ["a", "c"]
    assert rebuilt.productions_by_component() == {"a": [2, 6], "b": [4], "c": [-5]}
