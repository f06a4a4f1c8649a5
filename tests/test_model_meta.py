"""Meta-conditions: rule conditions reading the workflow's state, decided while planning and
logged, so a workflow rebuilt from its log (in memory or from a store) holds the same
decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import runeflow as rf
from runeflow.cli.graph import nodes_of, to_dot, to_mermaid
from runeflow.model import events as ev


def add(value: int, total: int) -> int:
    return total + value


def over_budget(
    value: int,
    total: int = rf.state_of("spent"),
    approvals: int = rf.fact_count("approve"),
    audited: bool = rf.step_ran("audit"),
) -> bool:
    """Escalate once the budget would pass 10, or after two approvals unless audited."""
    return total + value > 10 or (approvals >= 2 and not audited)


def build() -> rf.Workflow:
    return (
        rf.workflow(name="budget")
        .add(rf.accumulator(add, init=0, name="spent"))
        .add(rf.filter(lambda v: v >= 3, name="approve"))
        .add(rf.rule(condition=lambda v: v == 99, reaction=lambda v: "audited", name="audit"))
        .add(rf.rule(condition=over_budget, reaction=lambda v: f"escalate {v}", name="escalate"))
    )


def decisions(log: list[ev.Event]) -> list[tuple[str, str]]:
    return [
        (e.kind, e.fact_id)
        for e in log
        if isinstance(e, ev.ConditionSatisfied | ev.ConditionRejected) and e.component == "escalate"
    ]


def run(inputs: list[int]) -> rf.Workflow:
    wf = build()
    for i, value in enumerate(inputs):
        wf.react_until_satisfied(value, key=f"in-{i}")
    return wf


def test_meta_conditions_read_state_while_planning() -> None:
    wf = run([1, 2, 4, 5])
    # 1: spent 0 -> no; 2: spent 1 -> no; 4: spent 3, one approval -> no;
    # 5: spent 7 + 5 > 10 -> escalate
    assert wf.raw_productions("escalate") == ["escalate 5"]
    assert wf.state_of("spent") == 12
    wf.react_until_satisfied(3, key="in-4")  # two approvals so far, no audit: escalates
    wf.react_until_satisfied(99, key="in-5")  # spent 15 > 10 anyway
    assert wf.raw_productions("escalate") == ["escalate 5", "escalate 3", "escalate 99"]


def test_state_of_gives_the_initial_state_before_any_input() -> None:
    wf = build()
    assert wf.state_of("spent") == 0
    wf.react_until_satisfied(20)  # the condition read 0 (then the accumulator ran)
    assert wf.raw_productions("escalate") == ["escalate 20"]


def test_replay_from_the_log_gives_the_same_decisions() -> None:
    wf = run([1, 2, 4, 5, 3])
    log = wf.event_log()
    assert len(decisions(log)) == 5
    rebuilt = rf.Workflow.from_events(log)
    assert decisions(rebuilt.event_log()) == decisions(log)
    assert rebuilt.raw_productions() == wf.raw_productions()
    assert rebuilt.state_of("spent") == wf.state_of("spent")
    # going on from the rebuilt state decides as the original does
    for w in (wf, rebuilt):
        w.react_until_satisfied(1, key="later")
    assert decisions(rebuilt.event_log()) == decisions(wf.event_log())
    assert rebuilt.raw_productions("escalate") == wf.raw_productions("escalate")


def test_replay_from_a_stored_log_gives_the_same_decisions(tmp_path: Path) -> None:
    store = rf.SQLiteStore(tmp_path / "meta.db")
    wf = run([1, 2, 4, 5, 3])
    store.create(
        "b1", definition_name="budget", definition_hash=wf.definition_hash(), status="idle"
    )
    store.append("b1", wf.uncommitted_events())
    stored = list(store.stream("b1"))
    assert decisions(stored) == decisions(wf.event_log())
    rebuilt = rf.Workflow.from_events(stored, definition=build)
    assert decisions(rebuilt.event_log()) == decisions(wf.event_log())
    assert rebuilt.results(["escalate", "spent"], all=True) == wf.results(
        ["escalate", "spent"], all=True
    )
    for w in (wf, rebuilt):
        w.react_until_satisfied(2, key="later")
    assert rebuilt.raw_productions("escalate") == wf.raw_productions("escalate")


def test_meta_conditions_under_the_runner_recover_with_their_decisions(tmp_path: Path) -> None:
    db = tmp_path / "runner.db"
    with rf.Runner(store=rf.SQLiteStore(db), workflows=[build], executor="inline") as runner:
        runner.start_workflow("b2", build)
        for value in (1, 2, 4, 5):
            runner.run("b2", value)
        assert runner.wait("b2", timeout=10).status is rf.Status.IDLE
        before = runner.get_results("b2", components=["escalate"], all=True)
    with rf.Runner(store=rf.SQLiteStore(db), workflows=[build], executor="inline") as runner:
        assert runner.get_results("b2", components=["escalate"], all=True) == before
        runner.run("b2", 3)
        runner.wait("b2", timeout=10)
        assert runner.get_results("b2", components=["escalate"], all=True) == {
            "escalate": ["escalate 5", "escalate 3"]
        }


def test_meta_reads_are_edges_of_the_graph_and_are_drawn() -> None:
    wf = build()
    described = {c["name"]: c["reads"] for c in wf.graph.describe()["components"]}
    assert described["escalate"] == ["state_of:spent", "fact_count:approve", "step_ran:audit"]
    assert described["spent"] == []
    nodes = nodes_of(wf)
    mermaid = to_mermaid(wf.name, nodes)
    assert "n0 -.->|state_of| n3" in mermaid
    assert "n1 -.->|fact_count| n3" in mermaid
    dot = to_dot(wf.name, nodes)
    assert 'n2 -> n3 [style=dashed, label="step_ran"];' in dot
    stored = [e for e in wf.event_log() if isinstance(e, ev.ComponentAdded)]
    assert stored[-1].reads == ("state_of:spent", "fact_count:approve", "step_ran:audit")


def test_stored_instances_are_drawn_with_their_meta_edges(tmp_path: Path) -> None:
    from runeflow.view import load_view

    store = rf.SQLiteStore(tmp_path / "view.db")
    with rf.Runner(store=store, workflows=[build], executor="inline") as runner:
        runner.start_instance(build, 4, id="v1")
        runner.wait("v1", timeout=10)
    view = load_view(rf.SQLiteStore(tmp_path / "view.db"), "v1")
    assert "n0 -.->|state_of| n3" in to_mermaid("budget", view.nodes())


def reads_cart(x: Any, s: int = rf.state_of("cart")) -> bool:
    return True


def reads_plain(x: Any, s: int = rf.state_of("plain")) -> bool:
    return True


def test_a_meta_condition_naming_an_unknown_component_is_refused() -> None:
    wf = rf.workflow(name="m")
    with pytest.raises(rf.WorkflowDefinitionError, match="no component 'cart': add it before"):
        wf.add(rf.rule(condition=reads_cart, reaction=lambda x: x, name="r"))


def test_state_of_needs_a_stateful_component() -> None:
    wf = rf.workflow(name="m").add(rf.step(lambda x: x, name="plain"))
    with pytest.raises(rf.WorkflowDefinitionError, match="keeps no state"):
        wf.add(rf.rule(condition=reads_plain, reaction=lambda x: x, name="r"))


def test_meta_conditions_outside_rule_conditions_are_refused() -> None:
    def step_fn(x: Any, n: int = rf.fact_count("a")) -> Any:
        return x

    with pytest.raises(rf.WorkflowDefinitionError, match="read only by rule conditions"):
        rf.step(step_fn)
    with pytest.raises(rf.WorkflowDefinitionError, match="read only by rule conditions"):
        rf.rule(condition=lambda x: True, reaction=step_fn)
    with pytest.raises(rf.WorkflowDefinitionError, match="needs the name of a component"):
        rf.state_of("")


def test_a_component_a_rule_reads_cannot_be_removed_alone() -> None:
    wf = build()
    with pytest.raises(rf.WorkflowDefinitionError, match="reads it"):
        wf.remove("audit")
    wf.remove("audit", "escalate")
    assert "audit" not in wf.components and "audit" not in wf.graph.readers


def test_meta_markers_are_part_of_the_hash() -> None:
    def a(x: Any, n: int = rf.fact_count("one")) -> bool:
        return True

    def b(x: Any, n: int = rf.fact_count("two")) -> bool:
        return True

    assert (
        rf.rule(condition=a, reaction=str, name="r").hash
        != rf.rule(condition=b, reaction=str, name="r").hash
    )


def test_step_ran_and_fact_count_see_what_ran_before_the_condition() -> None:
    def ready(v: int, audited: bool = rf.step_ran("audit"), n: int = rf.fact_count("approve")):
        return audited and n >= 2

    wf = (
        rf.workflow(name="release")
        .add(rf.filter(lambda v: v >= 3, name="approve"))
        .add(rf.rule(condition=lambda v: v == 99, reaction=lambda v: "audited", name="audit"))
        .add(rf.rule(condition=ready, reaction=lambda v: f"release {v}", name="release"))
    )
    wf.react_until_satisfied(5)  # one approval, no audit
    wf.react_until_satisfied(99)  # decided before this input's audit and approval ran
    assert wf.raw_productions("release") == []
    wf.react_until_satisfied(7)  # audited, two approvals before it
    assert wf.raw_productions("release") == ["release 7"]
