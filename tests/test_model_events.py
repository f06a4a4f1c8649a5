"""The event log: from_events round trips, stored (code-free) logs, definition checks, hashes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf
from runeflow.model import events as ev


def state_signature(wf: rf.Workflow) -> dict[str, Any]:
    """Everything that makes up a workflow's run state, in comparable form."""
    return {
        "facts": {
            fid: (f.component, f.parents, f.scope, getattr(f, "value", None))
            for fid, f in wf.facts().items()
        },
        "produced": [f.id for f in wf.productions()],
        "pending": sorted(wf._pending),
        "matches": sorted(wf._matches),
        "in_flight": sorted(wf._in_flight),
        "joins": {k: [[f.id for f in b] for b in v.buffers] for k, v in wf._joins.items()},
        "fanin": {
            k: (v.count, sorted(v.received), sorted(v.dropped), v.failed)
            for k, v in wf._fanin.items()
        },
        "acc_state": dict(wf._acc_state),
        "acc_queue": {k: [a.id for a in q] for k, q in wf._acc_queue.items()},
        "waits": sorted(wf._waits),
        "timers": sorted(wf._timers),
        "failures": sorted(wf._failures),
        "steps": wf.step_count,
    }


def rich_workflow() -> rf.Workflow:
    return (
        rf.workflow(name="rich", outputs={"total": "total"})
        .add(rf.step(lambda x: x["items"], name="items"))
        .add(rf.map(lambda x: x * 2, name="double"), to="items")
        .add(rf.reduce(lambda x, acc: acc + x, 0, map="double", name="total"))
        .add(rf.step(lambda x: x["n"], name="n"))
        .add(rf.step(lambda x: len(x["items"]), name="count"))
        .add(rf.step(lambda a, b: a * b, name="joined"), to=["n", "count"])
        .add(rf.accumulator(lambda x, acc: acc + 1, init=0, name="seen"))
        .add(rf.await_event(name="approval", events=["yes", "no"]), to="joined")
        .add(
            rf.rule(condition=lambda s: s.event == "yes", reaction=lambda s: "ok", name="ok"),
            to="approval",
        )
        .add(rf.step(lambda x: 1 // 0, name="broken"), to="count")
        .add(rf.step(lambda x: x, name="after_broken"), to="broken")
    )


def test_round_trip_after_partial_execution() -> None:
    wf = rich_workflow()
    wf.plan_eagerly({"items": [1, 2, 3], "n": 4})
    first = wf.prepare_for_dispatch()
    for r in first[:2]:  # leave some in flight
        wf.apply_runnable(rf.execute_runnable(r))
    wf.plan_eagerly()
    second = wf.prepare_for_dispatch()
    if second:
        wf.apply_runnable(rf.execute_runnable(second[0]))
    rebuilt = rf.Workflow.from_events(wf.event_log())
    assert state_signature(rebuilt) == state_signature(wf)
    # both continue identically
    for w in (wf, rebuilt):
        w.requeue_in_flight()
        w.react_until_satisfied()
    assert state_signature(rebuilt) == state_signature(wf)
    assert wf.results() == {"total": 12}


def test_round_trip_after_full_execution_and_an_event() -> None:
    wf = rich_workflow().react_until_satisfied({"items": [1, 2], "n": 5})
    wf.react_until_satisfied({"items": [], "n": 1})
    assert len(wf.open_waits()) == 2
    wf.deliver_event("yes", wait_id=wf.open_waits()[0].id)
    wf.react_until_satisfied()
    rebuilt = rf.Workflow.from_events(wf.event_log())
    assert state_signature(rebuilt) == state_signature(wf)
    assert rebuilt.results(all=True) == wf.results(all=True)
    assert rebuilt.productions_by_component() == wf.productions_by_component()
    assert [e.kind for e in rebuilt.event_log()] == [e.kind for e in wf.event_log()]


def test_every_state_event_kind_appears_in_a_rich_run() -> None:
    wf = rich_workflow().react_until_satisfied({"items": [1], "n": 2})
    wf.deliver_event("no")
    wf.react_until_satisfied()
    kinds = {e.kind for e in wf.event_log()}
    expected = {
        "workflow_created",
        "component_added",
        "fact_produced",
        "condition_rejected",
        "runnable_dispatched",
        "runnable_completed",
        "runnable_failed",
        "state_initiated",
        "event_received",
        "join_fact_received",
        "join_completed",
        "fan_out_emitted",
        "fan_in_completed",
        "event_awaited",
        "downstream_skipped",
    }
    assert expected <= kinds


def stored_form(log: list[ev.Event]) -> list[ev.Event]:
    """What a store gives back: build events without code."""
    return [
        dataclasses.replace(e, component=None) if isinstance(e, ev.ComponentAdded) else e
        for e in log
    ]


def test_build_records_never_hold_code() -> None:
    wf = rich_workflow()
    for event in wf.event_log():
        if isinstance(event, ev.ComponentAdded):
            record = ev.build_record(event)
            assert set(record) == {"name", "component_kind", "parents", "hash", "reads", "kind"}
            json.dumps(record)


def test_stored_log_needs_a_definition() -> None:
    wf = rich_workflow().react_until_satisfied({"items": [1], "n": 2})
    stored = stored_form(wf.event_log())
    with pytest.raises(rf.DefinitionMismatchError, match="stores no code for component 'items'"):
        rf.Workflow.from_events(stored)
    rebuilt = rf.Workflow.from_events(stored, definition=rich_workflow)
    assert state_signature(rebuilt) == state_signature(wf)
    assert rebuilt.graph is not wf.graph


def test_rebuild_shares_the_definition_structure() -> None:
    definition = rich_workflow()
    wf = definition.fresh().react_until_satisfied({"items": [3], "n": 1})
    rebuilt = rf.Workflow.from_events(stored_form(wf.event_log()), definition=definition)
    assert rebuilt.graph is definition.graph


def test_changed_code_is_a_definition_mismatch() -> None:
    wf = rf.workflow(name="m").add(rf.step(lambda x: x + 1, name="inc")).react_until_satisfied(1)
    stored = stored_form(wf.event_log())
    changed = rf.workflow(name="m").add(rf.step(lambda x: x + 2, name="inc"))
    with pytest.raises(rf.DefinitionMismatchError, match="'inc' changed") as info:
        rf.Workflow.from_events(stored, definition=changed)
    assert info.value.component == "inc"
    migrated = rf.Workflow.from_events(stored, definition=changed, migrate=True)
    assert migrated.raw_productions() == [2]
    missing = rf.workflow(name="m").add(rf.step(lambda x: x + 1, name="other"))
    with pytest.raises(rf.DefinitionMismatchError, match="'inc' is in the stored log but not"):
        rf.Workflow.from_events(stored, definition=missing)
    with pytest.raises(rf.DefinitionMismatchError, match="workflow 'm' but the definition"):
        rf.Workflow.from_events(stored, definition=rf.workflow(name="other"))


def test_definition_by_import_path(tmp_path: Path) -> None:
    module = tmp_path / "flows.py"
    module.write_text(
        textwrap.dedent("""
        import runeflow as rf

        def build():
            return rf.workflow(name="imported").add(rf.step(lambda x: x * 3, name="triple"))
    """)
    )
    from runeflow.model.workflow import load_definition

    wf = load_definition(f"{module}:build").react_until_satisfied(2)
    stored = stored_form(wf.event_log())
    rebuilt = rf.Workflow.from_events(stored, definition=f"{module}:build")
    assert rebuilt.raw_productions() == [6]
    with pytest.raises(rf.WorkflowDefinitionError, match="has no attribute 'nope'"):
        load_definition(f"{module}:nope")
    with pytest.raises(rf.WorkflowDefinitionError, match=r"package\.module:attribute"):
        load_definition("no_colon_here")


def test_log_must_start_with_workflow_created() -> None:
    with pytest.raises(rf.WorkflowDefinitionError, match="must start with a workflow_created"):
        rf.Workflow.from_events([])


def test_uncommitted_events_drain() -> None:
    wf = rf.workflow(name="u").add(rf.step(lambda x: x, name="a"))
    first = wf.uncommitted_events()
    assert [e.kind for e in first] == ["workflow_created", "component_added"]
    assert wf.uncommitted_events() == []
    wf.react_until_satisfied(1)
    assert wf.has_uncommitted()
    batch = wf.uncommitted_events()
    assert [e.kind for e in batch] == [
        "fact_produced",
        "runnable_dispatched",
        "fact_produced",
        "runnable_completed",
    ]
    assert not wf.has_uncommitted()
    assert rf.Workflow.from_events(first + batch).raw_productions() == [1]


def test_components_added_mid_run_keep_their_place_in_the_log() -> None:
    wf = rf.workflow(name="mid").add(rf.step(lambda x: x + 1, name="a"))
    wf.react_until_satisfied(1)
    wf.add(rf.step(lambda x: x * 10, name="b"), to="a")
    wf.react_until_satisfied(2)
    log = wf.event_log()
    kinds = [e.kind for e in log]
    assert kinds.count("component_added") == 2
    rebuilt = rf.Workflow.from_events(log)
    assert rebuilt.productions_by_component() == {"a": [2, 3], "b": [30]}


HASH_SCRIPT = textwrap.dedent("""
    import json, runeflow as rf
    LIMIT = 10
    def helper(x):
        return x + LIMIT
    def uses_helper(x):
        return helper(x) * 2
    def make(offset):
        return rf.step(lambda x: x + offset, name="closure")
    comps = [
        rf.step(uses_helper),
        make(5),
        rf.rule(condition=lambda x: x in {"a", "b", "c"}, reaction=str.upper, name="r"),
        rf.map(lambda x: x, name="m"),
        rf.reduce(lambda x, a: a + x, {"start": (1, 2)}, map="m", name="red"),
        rf.accumulator(lambda x, a: a, init=dict, name="acc"),
        rf.await_event(name="w", events=["go"], timeout=5),
    ]
    print(json.dumps([c.hash for c in comps]))
""")


def test_component_hashes_are_equal_across_processes(tmp_path: Path) -> None:
    script = tmp_path / "hashes.py"
    script.write_text(HASH_SCRIPT)
    runs = []
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        )
        runs.append(json.loads(out.stdout))
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == len(runs[0])


def test_hashes_change_with_code_closure_and_name() -> None:
    def make(offset: int) -> rf.Step:
        return rf.step(lambda x: x + offset, name="s")

    assert make(1).hash == make(1).hash
    assert make(1).hash != make(2).hash
    assert rf.step(lambda x: x + 1, name="s").hash != rf.step(lambda x: x - 1, name="s").hash
    assert rf.step(lambda x: x + 1, name="s").hash != rf.step(lambda x: x + 1, name="t").hash
    assert (
        rf.reduce(lambda x, a: a, 0, map="m", name="r").hash
        != rf.reduce(lambda x, a: a, 1, map="m", name="r").hash
    )


def test_context_values_are_not_hashed() -> None:
    def f(x: int, key: str = rf.context("key", default="one")) -> int:
        return x

    def g(x: int, key: str = rf.context("key", default="two")) -> int:
        return x

    # Only the key is part of the definition; the default and the run's values are not code.
    assert rf.step(f, name="s").hash != ""
    wf = rf.workflow(name="c").add(rf.step(f, name="s"))
    before = wf.components["s"].hash
    wf.react_until_satisfied(1, run_context={"_global": {"key": "secret"}})
    assert wf.components["s"].hash == before
    assert "secret" not in repr(wf.event_log())
    del g


def test_a_redispatch_after_recovery_replays() -> None:
    wf = rf.workflow(name="re").add(rf.step(lambda x: x + 1, name="a")).plan_eagerly(1)
    wf.prepare_for_dispatch()  # dispatched, then the process "crashed"
    recovered = rf.Workflow.from_events(wf.event_log())
    assert recovered.requeue_in_flight() == 1
    [again] = recovered.prepare_for_dispatch()
    recovered.apply_runnable(rf.execute_runnable(again))
    replayed = rf.Workflow.from_events(recovered.event_log())
    assert replayed.raw_productions() == [2]
    assert replayed.in_flight() == []
