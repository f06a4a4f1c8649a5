"""Recovery from a store: full, hybrid and lazy rehydration, with and without snapshots."""

from __future__ import annotations

from typing import Any

import pytest

import runeflow as rf
from conftest import ALL_STORES
from runeflow.errors import DefinitionMismatchError, InstanceStateError, StoreError
from runeflow.model.facts import Fact, FactRef
from runeflow.model.snapshot import hot_fact_ids
from runeflow.recovery import load_workflow, save_snapshot
from runeflow.stores import Store
from test_model_events import state_signature

MODES = ("full", "hybrid", "lazy")


def order_workflow() -> rf.Workflow:
    """Map/reduce, a join, an accumulator, a wait and a failing step."""
    return (
        rf.workflow(name="orders", outputs={"total": "total", "tally": "tally"})
        .add(rf.step(lambda o: [{"sku": s, "qty": 2} for s in o["skus"]], name="lines"))
        .add(rf.map(lambda line: line["qty"] * 10, name="price"), to="lines")
        .add(rf.reduce(lambda x, acc: acc + x, 0, map="price", name="total"))
        .add(rf.step(lambda o: o["customer"], name="customer"))
        .add(rf.step(lambda total, c: f"{c}:{total}", name="invoice"), to=["total", "customer"])
        .add(rf.accumulator(lambda o, acc: acc + len(o["skus"]), init=0, name="tally"))
        .add(rf.await_event(name="approval", events=["yes", "no"]), to="invoice")
        .add(rf.step(lambda s: (s.event, s.input), name="decided"), to="approval")
        .add(rf.step(lambda o: 1 // 0, name="broken"), to="customer")
    )


def cycle(store: Store, wid: str, wf: rf.Workflow, runnables: int | None = None) -> None:
    """Run one cycle (at most ``runnables`` of them applied) and append its events."""
    wf.plan_eagerly()
    ready = wf.prepare_for_dispatch()
    for r in ready[:runnables]:
        wf.apply_runnable(rf.execute_runnable(r))
    wf.plan_eagerly()
    store.append(wid, wf.uncommitted_events())


def start(store: Store, wid: str, order: dict[str, Any]) -> rf.Workflow:
    wf = order_workflow().fresh()
    store.create(wid, definition_name=wf.name, definition_hash=wf.definition_hash())
    wf.feed(order)
    while wf.is_runnable():
        cycle(store, wid, wf)
    return wf


def finish(wf: rf.Workflow) -> dict[str, Any]:
    """Continue a recovered workflow to its end; return everything it produced."""
    wf.requeue_in_flight()
    wf.react_until_satisfied()
    wf.deliver_event("yes", step="approval")
    wf.react_until_satisfied()
    return {"by": wf.productions_by_component(), "results": wf.results(all=True)}


ORDER = {"skus": ["a", "b", "c"], "customer": "ada"}


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_modes_give_the_same_workflow_and_continue_alike(store: Store) -> None:
    wf = order_workflow().fresh()
    store.create("w1", definition_name=wf.name, definition_hash=wf.definition_hash())
    wf.feed(ORDER)
    cycle(store, "w1", wf)
    cycle(store, "w1", wf, runnables=1)  # leaves runnables in flight
    expected = finish(wf)
    recovered = {
        mode: load_workflow(store, "w1", order_workflow, rehydration=mode) for mode in MODES
    }
    assert recovered["full"].in_flight() and not recovered["full"].is_runnable()
    signatures = [state_signature(w) for w in recovered.values()]
    assert signatures[0]["pending"] == signatures[1]["pending"] == signatures[2]["pending"]
    for mode, w in recovered.items():
        assert finish(w) == expected, mode


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_snapshot_plus_tail_equals_the_whole_log(store: Store) -> None:
    wf = start(store, "w2", ORDER)
    assert save_snapshot(store, "w2", wf) == store.cursor("w2")
    wf.deliver_event("no", step="approval")
    wf.feed({"skus": ["d"], "customer": "bob"})
    cycle(store, "w2", wf)
    cycle(store, "w2", wf, runnables=1)
    whole = load_workflow(store, "w2", order_workflow, use_snapshot=False)
    for mode in MODES:
        from_snapshot = load_workflow(store, "w2", order_workflow, rehydration=mode)
        if mode == "full":
            assert state_signature(from_snapshot) == state_signature(whole) == state_signature(wf)
        assert finish(from_snapshot) == finish(load_workflow(store, "w2", order_workflow))


class Counting:
    """Wraps a store's fact reads and records the ids read."""

    def __init__(self, store: Store) -> None:
        self.ids: list[str] = []
        load_fact, load_facts = store.load_fact, store.load_facts

        def one(fact_id: str) -> Any:
            self.ids.append(fact_id)
            return load_fact(fact_id)

        def many(fact_ids: Any) -> dict[str, Any]:
            self.ids.extend(fact_ids)
            return load_facts(fact_ids)

        store.load_fact = one  # type: ignore[method-assign]
        store.load_facts = many  # type: ignore[method-assign]


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_hybrid_loads_only_hot_values_and_lazy_none(store: Store) -> None:
    wf = start(store, "w3", {"skus": [f"s{i}" for i in range(20)], "customer": "ada"})
    save_snapshot(store, "w3", wf)
    reads = Counting(store)
    lazy = load_workflow(store, "w3", order_workflow, rehydration="lazy")
    assert reads.ids == []
    assert all(type(f) is FactRef for f in lazy.facts().values())
    hybrid = load_workflow(store, "w3", order_workflow, rehydration="hybrid")
    hot = {hybrid.open_waits()[0].fact.id, hybrid.productions("tally")[-1].id}
    assert set(reads.ids) == hot  # (the memory store reads a batch one by one)
    cold = [f for f in hybrid.facts().values() if f.id not in hot]
    assert len(cold) > 20 and all(type(f) is FactRef for f in cold)
    assert all(type(hybrid.fact(i)) is Fact for i in hot)
    assert hybrid.state_of("tally") == 20
    assert lazy.state_of("tally") == 20  # loaded on demand
    assert lazy.results() == hybrid.results() == wf.results()


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_hybrid_from_the_log_keeps_cold_values_out(store: Store) -> None:
    wf = start(store, "w4", ORDER)
    cycle(store, "w4", wf)
    hybrid = load_workflow(store, "w4", order_workflow, rehydration="hybrid")
    loaded = {fid for fid, f in hybrid.facts().items() if type(f) is Fact}
    assert loaded == set(
        hot_fact_ids(load_workflow(store, "w4", order_workflow, rehydration="lazy"))
    )
    assert finish(hybrid) == finish(wf)


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_corrupted_snapshot_is_an_error_naming_the_workflow(store: Store) -> None:
    wf = start(store, "w5", ORDER)
    cursor = save_snapshot(store, "w5", wf)
    store.save_snapshot("w5", cursor, b'{"format": 1, "workflow": "or')
    with pytest.raises(StoreError, match="'w5'") as info:
        load_workflow(store, "w5", order_workflow)
    assert info.value.workflow_id == "w5" and "use_snapshot=False" in str(info.value)
    store.save_snapshot("w5", cursor, b'{"format": 1}')
    with pytest.raises(StoreError, match="snapshot of workflow 'w5'"):
        load_workflow(store, "w5", order_workflow)
    rebuilt = load_workflow(store, "w5", order_workflow, use_snapshot=False)
    assert rebuilt.results() == wf.results()


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_snapshot_needs_committed_events_and_the_same_code(store: Store) -> None:
    wf = start(store, "w6", ORDER)
    wf.deliver_event("yes", step="approval")
    with pytest.raises(InstanceStateError, match="uncommitted_events"):
        save_snapshot(store, "w6", wf)
    store.append("w6", wf.uncommitted_events())
    save_snapshot(store, "w6", wf)

    def changed() -> rf.Workflow:
        new = order_workflow()
        new.graph.components["price"].hash = "1" * 64  # as if its code had changed
        return new

    with pytest.raises(DefinitionMismatchError) as info:
        load_workflow(store, "w6", changed)
    assert info.value.component == "price"
    assert load_workflow(store, "w6", changed, migrate=True).results() == wf.results()


def test_unknown_rehydration_mode(store: Store) -> None:
    with pytest.raises(ValueError, match="rehydration"):
        load_workflow(store, "w", order_workflow, rehydration="eager")  # type: ignore[arg-type]
