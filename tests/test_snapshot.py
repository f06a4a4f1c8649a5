"""Snapshots: snapshot + the events after it rebuilds exactly what the whole log rebuilds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import runeflow as rf
from runeflow.codec import default_codec
from runeflow.errors import DefinitionMismatchError, WorkflowDefinitionError
from runeflow.model import events as ev
from runeflow.model.facts import FactRef
from runeflow.model.snapshot import hot_fact_ids
from test_model_events import rich_workflow, state_signature, stored_form
from test_model_properties import dags


def encoded(snapshot: dict[str, Any]) -> Any:
    """What a store gives back: the snapshot through the default codec."""
    return default_codec.decode(default_codec.encode(snapshot))


def rich_run() -> rf.Workflow:
    wf = rich_workflow().react_until_satisfied({"items": [1, 2], "n": 5})
    wf.react_until_satisfied({"items": [], "n": 1})
    wf.record(ev.TimerScheduled("t-1", wf.open_waits()[0].id, "approval", 12.0))
    wf.record(ev.TimerScheduled("t-2", wf.open_waits()[1].id, "approval", 15.0))
    wf.deliver_event("yes", wait_id=wf.open_waits()[0].id)
    return wf.react_until_satisfied()


def test_snapshot_at_every_point_of_a_rich_log_plus_tail_equals_the_log() -> None:
    log = rich_run().event_log()
    whole = rf.Workflow.from_events(log)
    start = len(rich_workflow().graph.build_events())
    for cut in range(start, len(log) + 1):
        snapshot = encoded(rf.Workflow.from_events(log[:cut]).snapshot())
        restored = rf.Workflow.from_snapshot(snapshot, rich_workflow, stored_form(log[cut:]))
        assert state_signature(restored) == state_signature(whole), f"cut at event {cut}"


def test_restored_workflow_continues_like_the_original() -> None:
    wf = rich_run()
    restored = rf.Workflow.from_snapshot(encoded(wf.snapshot()), rich_workflow)
    for w in (wf, restored):
        w.deliver_event("no", step="approval")
        w.react_until_satisfied()
    assert state_signature(restored) == state_signature(wf)
    for w in (wf, restored):  # a new input gets a new id (as after replay): compare values
        w.react_until_satisfied({"items": [3], "n": 2})
    assert restored.productions_by_component() == wf.productions_by_component()
    assert restored.results(all=True) == wf.results(all=True)
    assert restored.state_of("seen") == wf.state_of("seen") == 3


def test_snapshot_is_plain_data_without_code() -> None:
    snapshot = rich_run().snapshot()
    text = default_codec.encode(snapshot).decode()
    assert "<function" not in text and "co_code" not in text
    assert all(isinstance(part, str | list) for c in snapshot["components"] for part in c)
    assert snapshot["workflow"] == "rich"
    assert [c[0] for c in snapshot["components"]] == list(rich_workflow().components)


def test_snapshot_without_values_restores_refs_and_loads_on_demand() -> None:
    wf = rich_run()
    values = {fid: f.value for fid, f in wf.facts().items()}  # type: ignore[union-attr]
    loaded: list[str] = []

    def loader(fact_id: str) -> Any:
        loaded.append(fact_id)
        return values[fact_id]

    snapshot = encoded(wf.snapshot(values=False))
    restored = rf.Workflow.from_snapshot(snapshot, rich_workflow)
    assert all(type(f) is FactRef for f in restored.facts().values())
    restored.set_fact_loader(loader)
    assert restored.results(all=True) == wf.results(all=True)
    assert loaded  # read on demand
    seen_state = restored.productions("seen")[-1].id  # the accumulator's state
    assert set(hot_fact_ids(restored)) == {restored.open_waits()[0].fact.id, seen_state}


def test_changed_component_is_a_mismatch_unless_migrating() -> None:
    snapshot = encoded(rich_run().snapshot())

    def changed() -> rf.Workflow:
        wf = rich_workflow()
        wf.graph.components["count"].hash = "0" * 64  # as if its code had changed
        return wf

    with pytest.raises(DefinitionMismatchError) as info:
        rf.Workflow.from_snapshot(snapshot, changed)
    assert info.value.component == "count"
    migrated = rf.Workflow.from_snapshot(snapshot, changed, migrate=True)
    assert migrated.results() == rich_run().results()


def test_snapshot_needs_a_definition_and_a_known_format() -> None:
    snapshot = encoded(rich_run().snapshot())
    with pytest.raises(DefinitionMismatchError, match="definition="):
        rf.Workflow.from_snapshot(snapshot)
    with pytest.raises(WorkflowDefinitionError, match="snapshot format"):
        rf.Workflow.from_snapshot({**snapshot, "format": 99}, rich_workflow)


@settings(max_examples=80, deadline=None)
@given(
    definition=dags(),
    value=st.integers(0, 1000),
    stop=st.integers(0, 30),
    more=st.integers(0, 30),
)
def test_snapshot_at_a_random_point_plus_tail_equals_replay(
    definition: rf.Workflow, value: int, stop: int, more: int
) -> None:
    wf = definition.fresh().plan_eagerly(value)

    def run(steps: int) -> None:
        for _ in range(steps):
            if not wf.is_runnable():
                return
            runnables = wf.prepare_for_dispatch()
            if runnables:
                wf.apply_runnable(rf.execute_runnable(runnables[0]))  # others stay in flight
            wf.plan_eagerly()

    run(stop)
    snapshot = encoded(wf.snapshot())
    cut = len(wf.event_log())
    run(more)
    log = wf.event_log()
    restored = rf.Workflow.from_snapshot(snapshot, definition, stored_form(log[cut:]))
    replayed = rf.Workflow.from_events(stored_form(log), definition)
    assert state_signature(restored) == state_signature(replayed) == state_signature(wf)
    for w in (wf, restored):
        w.requeue_in_flight()
        w.react_until_satisfied()
    assert state_signature(restored) == state_signature(wf)
