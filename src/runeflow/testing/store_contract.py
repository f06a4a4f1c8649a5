"""The store conformance suite: every runeflow store must pass it.

Subclass :class:`StoreContract` in a test module and provide a ``store`` fixture that yields
a fresh, empty store::

    import pytest
    from runeflow.testing.store_contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            with MyStore(tmp_path / "db") as store:
                yield store

Optional test hook: a ``corrupt_event(workflow_id, cursor)`` method that damages the stored
row holding that event; the bad-data tests skip (saying why) when a store lacks it.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from runeflow.errors import CodecError, StoreError, WorkflowNotFoundError
from runeflow.model.events import (
    ComponentAdded,
    ErrorInfo,
    Event,
    EventReceived,
    FactProduced,
    RunnableCompleted,
    RunnableDispatched,
    RunnableFailed,
    StateInitiated,
    WorkflowCreated,
)
from runeflow.model.facts import Fact, FactRef
from runeflow.stores.base import Store, Timer

__all__ = ["StoreContract", "make_cycle"]


def _wid() -> str:
    return f"wf-{uuid.uuid4().hex[:12]}"


def make_cycle(i: int, value: Any = None) -> list[Event]:
    """Return one realistic dispatch cycle: dispatched, fact produced, completed."""
    rid = f"run-{i:06d}"
    fact = Fact(
        f"fact-{i:06d}-{uuid.uuid4().hex[:6]}",
        {"n": i, "items": ["a", "b"]} if value is None else value,
        "price",
        "h" * 16,
        (f"fact-{i - 1:06d}",),
        ("root-1", ("split", "fact-0", i, 10)),
    )
    return [
        RunnableDispatched(runnable_id=rid, component="price"),
        FactProduced(fact=fact, runnable_id=rid),
        RunnableCompleted(runnable_id=rid, component="price", duration=0.25),
    ]


class _Unencodable:
    """A value no codec knows."""


class StoreContract:
    """Tests every :class:`~runeflow.stores.base.Store` must pass (needs a ``store`` fixture)."""

    def _created(self, store: Store, **meta: Any) -> str:
        wid = _wid()
        assert store.create(wid, definition_name="orders", definition_hash="abc", **meta)
        return wid

    # --- instances --------------------------------------------------------------------------

    def test_create_and_get(self, store: Store) -> None:
        wid = self._created(store, metadata={"definition": "pkg.mod:build"})
        meta = store.get(wid)
        assert (meta.workflow_id, meta.definition_name, meta.definition_hash) == (
            wid,
            "orders",
            "abc",
        )
        assert meta.status == "running" and meta.cursor == 0
        assert meta.metadata == {"definition": "pkg.mod:build"}
        assert meta.created_at <= meta.updated_at <= time.time() + 1
        assert store.exists(wid)

    def test_create_twice_overwrites_nothing(self, store: Store) -> None:
        wid = self._created(store)
        store.append(wid, make_cycle(1))
        assert not store.create(wid, definition_name="other", definition_hash="zzz")
        meta = store.get(wid)
        assert meta.definition_name == "orders" and meta.cursor == 3

    def test_unknown_instance(self, store: Store) -> None:
        assert not store.exists("nope")
        with pytest.raises(WorkflowNotFoundError) as info:
            store.get("nope")
        assert info.value.workflow_id == "nope"
        with pytest.raises(WorkflowNotFoundError):
            store.set_status("nope", "idle")
        with pytest.raises(WorkflowNotFoundError):
            store.cursor("nope")
        with pytest.raises(WorkflowNotFoundError):
            store.stream("nope")

    def test_list_by_status(self, store: Store) -> None:
        a, b, c = self._created(store), self._created(store), self._created(store)
        store.set_status(b, "idle")
        store.set_status(c, "failed")
        assert {m.workflow_id for m in store.list()} == {a, b, c}
        assert [m.workflow_id for m in store.list("idle")] == [b]
        assert {m.workflow_id for m in store.list(["idle", "failed"])} == {b, c}
        assert store.list(status=()) == []

    def test_set_status(self, store: Store) -> None:
        wid = self._created(store)
        store.set_status(wid, "waiting")
        assert store.get(wid).status == "waiting"

    def test_delete_removes_everything_of_the_instance(self, store: Store) -> None:
        wid, other = self._created(store), self._created(store)
        store.append(wid, make_cycle(1))
        store.append(other, make_cycle(2))
        store.save_snapshot(wid, 3, b"snap")
        store.schedule_timer(Timer(timer_id=f"t-{wid}", workflow_id=wid, fire_at=1.0))
        store.acquire_lease(wid, "me", 30)
        store.delete(wid)
        assert not store.exists(wid)
        assert store.load_snapshot(wid) is None
        assert store.timers(wid) == []
        assert store.lease_owner(wid) is None
        assert store.create(wid, definition_name="orders", definition_hash="abc")
        assert list(store.stream(wid)) == []
        assert len(list(store.stream(other))) == 3

    # --- the log ----------------------------------------------------------------------------

    def test_append_and_stream_round_trip(self, store: Store) -> None:
        wid = self._created(store)
        events: list[Event] = [
            WorkflowCreated(name="orders", outputs=(("total", "price"),)),
            ComponentAdded(name="price", component_kind="step", parents=("root",), hash="h1"),
            *make_cycle(1),
            StateInitiated(component="acc", scope_key="", value=(1, {"k": {2, 3}})),
            EventReceived(wait_id="w", component="approve", event="ok", payload={1: b"x"}),
            RunnableFailed(runnable_id="r", component="c", error=ErrorInfo(type="E", message="m")),
        ]
        assert store.append(wid, events[:4]) == 4
        assert store.append(wid, events[4:]) == len(events)
        assert list(store.stream(wid)) == events
        assert store.cursor(wid) == len(events) == store.get(wid).cursor

    def test_append_returns_growing_cursor(self, store: Store) -> None:
        wid = self._created(store)
        assert [store.append(wid, make_cycle(i)) for i in range(4)] == [3, 6, 9, 12]

    def test_stream_after(self, store: Store) -> None:
        wid = self._created(store)
        events = [e for i in range(5) for e in make_cycle(i)]
        for start in range(0, 15, 3):
            store.append(wid, events[start : start + 3])
        for after in (0, 1, 3, 4, 14, 15, 20):
            assert list(store.stream(wid, after=after)) == events[after:]

    def test_empty_append_may_update_status(self, store: Store) -> None:
        wid = self._created(store)
        store.append(wid, make_cycle(1))
        assert store.append(wid, [], status="idle") == 3
        assert store.get(wid).status == "idle"

    def test_append_sets_status_with_events(self, store: Store) -> None:
        wid = self._created(store)
        store.append(wid, make_cycle(1), status="waiting")
        meta = store.get(wid)
        assert (meta.status, meta.cursor) == ("waiting", 3)

    def test_append_to_unknown_workflow(self, store: Store) -> None:
        with pytest.raises(StoreError, match="ghost"):
            store.append("ghost", make_cycle(1))
        assert not store.exists("ghost")

    def test_append_is_atomic(self, store: Store) -> None:
        wid = self._created(store)
        store.append(wid, make_cycle(1))
        bad = make_cycle(2)
        bad[1] = FactProduced(fact=Fact("bad", _Unencodable(), "c", "p", (), ("r",)))
        with pytest.raises(CodecError, match="_Unencodable"):
            store.append(wid, [*make_cycle(3), *bad, *make_cycle(4)])
        assert store.cursor(wid) == 3
        assert len(list(store.stream(wid))) == 3

    def test_appended_values_are_copied(self, store: Store) -> None:
        wid = self._created(store)
        value = {"items": [1, 2]}
        store.append(wid, make_cycle(1, value=value))
        value["items"].append(3)
        fact = next(e.fact for e in store.stream(wid) if isinstance(e, FactProduced))
        assert fact.value == {"items": [1, 2]}

    def test_component_is_not_stored(self, store: Store) -> None:
        wid = self._created(store)
        event = ComponentAdded(
            name="price",
            component_kind="step",
            parents=("root",),
            hash="h",
            component=object(),  # type: ignore[arg-type]
        )
        store.append(wid, [event])
        (loaded,) = store.stream(wid)
        assert isinstance(loaded, ComponentAdded) and loaded.component is None
        assert loaded == event

    def test_long_log_streams_in_order(self, store: Store) -> None:
        wid = self._created(store)
        for start in range(0, 1700):
            store.append(wid, make_cycle(start))
        seen = 0
        for event in store.stream(wid):
            if isinstance(event, RunnableDispatched):
                assert event.runnable_id == f"run-{seen // 3:06d}"
            seen += 1
        assert seen == 5100
        assert sum(1 for _ in store.stream(wid, after=4000)) == 1100

    def test_streams_of_two_workflows_are_apart(self, store: Store) -> None:
        a, b = self._created(store), self._created(store)
        store.append(a, make_cycle(1))
        store.append(b, make_cycle(2))
        store.append(a, make_cycle(3))
        assert store.cursor(a) == 6 and store.cursor(b) == 3

    def test_concurrent_appends_from_threads(self, store: Store) -> None:
        wid = self._created(store)
        cursors: list[int] = []

        def worker(k: int) -> None:
            for i in range(20):
                cursors.append(store.append(wid, make_cycle(k * 100 + i)))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(cursors) == list(range(3, 241, 3))
        assert len(list(store.stream(wid))) == 240

    # --- facts ------------------------------------------------------------------------------

    def test_stream_without_values_yields_refs(self, store: Store) -> None:
        if not store.capabilities.fact_store:
            pytest.skip("store has no fact_store capability")
        wid = self._created(store)
        events = make_cycle(1)
        store.append(wid, events)
        produced = events[1]
        assert isinstance(produced, FactProduced)
        refs: list[Any] = [
            e.fact for e in store.stream(wid, values=False) if isinstance(e, FactProduced)
        ]
        assert refs == [produced.fact.ref()]
        assert isinstance(refs[0], FactRef)
        assert store.load_fact(produced.fact.id) == produced.fact.value

    def test_save_and_load_fact(self, store: Store) -> None:
        store.save_fact("f-1", {"a": (1, 2)})
        assert store.load_fact("f-1") == {"a": (1, 2)}
        with pytest.raises(StoreError, match="f-missing"):
            store.load_fact("f-missing")

    def test_facts_are_content_addressed(self, store: Store) -> None:
        if not store.capabilities.fact_store:
            pytest.skip("store has no fact_store capability")
        before = store.stats()
        wid = self._created(store)
        for i in range(10):
            store.append(wid, make_cycle(i, value={"same": "value"}))
        store.save_fact(f"extra-{wid}", {"same": "value"})
        after = store.stats()
        assert after["facts"] - before["facts"] == 11
        assert after["contents"] - before["contents"] <= 1

    def test_appended_fact_ref_resolves_from_saved_value(self, store: Store) -> None:
        wid = self._created(store)
        fact = Fact("f-ref", [1, 2], "c", "p", (), ("r",))
        store.save_fact(fact.id, fact.value)
        store.append(wid, [FactProduced(fact=fact.ref())])  # type: ignore[arg-type]
        (event,) = store.stream(wid)
        assert isinstance(event, FactProduced) and event.fact == fact

    # --- snapshots --------------------------------------------------------------------------

    def test_snapshot_latest_wins(self, store: Store) -> None:
        wid = self._created(store)
        assert store.load_snapshot(wid) is None
        store.save_snapshot(wid, 3, b"first")
        store.save_snapshot(wid, 6, b"second")
        assert store.load_snapshot(wid) == (6, b"second")

    # --- timers -----------------------------------------------------------------------------

    def test_timers_due_in_order(self, store: Store) -> None:
        wid = self._created(store)
        base = 1_000_000.0 + time.time()
        for k, offset in enumerate((30.0, 10.0, 20.0)):
            store.schedule_timer(
                Timer(
                    timer_id=f"t{k}-{wid}", workflow_id=wid, fire_at=base + offset, payload={"k": k}
                )
            )
        assert store.next_timer_at() == base + 10.0
        due = store.due_timers(base + 25.0)
        assert [t.payload["k"] for t in due] == [1, 2]
        assert store.due_timers(base + 25.0, limit=1) == due[:1]
        assert [t.fire_at for t in store.timers(wid)] == [base + 10, base + 20, base + 30]

    def test_timer_cancelled_once(self, store: Store) -> None:
        wid = self._created(store)
        timer = Timer(timer_id=f"t-{wid}", workflow_id=wid, fire_at=5.0, payload={"wait_id": "w"})
        store.schedule_timer(timer)
        assert store.timers(wid) == [timer]
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(store.cancel_timer(timer.timer_id)))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [False, False, False, True]
        assert store.timers(wid) == []

    def test_no_timers(self, store: Store) -> None:
        assert store.due_timers(-1e18) == []
        assert store.cancel_timer("never-scheduled") is False

    # --- leases -----------------------------------------------------------------------------

    def test_lease_held_by_one_owner(self, store: Store) -> None:
        wid = self._created(store)
        assert store.acquire_lease(wid, "a", 30)
        assert store.acquire_lease(wid, "a", 30)
        assert not store.acquire_lease(wid, "b", 30)
        assert store.lease_owner(wid) == "a"
        assert store.renew_lease(wid, "a", 30)
        assert not store.renew_lease(wid, "b", 30)
        store.release_lease(wid, "b")
        assert store.lease_owner(wid) == "a"
        store.release_lease(wid, "a")
        assert store.lease_owner(wid) is None
        assert store.acquire_lease(wid, "b", 30)

    def test_lease_expires(self, store: Store) -> None:
        wid = self._created(store)
        assert store.acquire_lease(wid, "a", 0.05)
        time.sleep(0.1)
        assert store.lease_owner(wid) is None
        assert not store.renew_lease(wid, "a", 30)
        assert store.acquire_lease(wid, "b", 30)
        assert store.lease_owner(wid) == "b"

    # --- bad data ---------------------------------------------------------------------------

    def test_corrupted_row_fails_at_that_row(self, store: Store) -> None:
        corrupt = getattr(store, "corrupt_event", None)
        if corrupt is None:
            pytest.skip("store has no corrupt_event() test hook")
        wid, other = self._created(store), self._created(store)
        cycles = [make_cycle(i) for i in range(3)]
        for cycle in cycles:
            store.append(wid, cycle)
        store.append(other, make_cycle(9))
        corrupt(wid, 5)
        stream = store.stream(wid)
        assert [next(stream) for _ in range(3)] == cycles[0]
        with pytest.raises(StoreError) as info:
            next(stream)
        assert info.value.workflow_id == wid and info.value.cursor == 4
        assert wid in str(info.value) and "4" in str(info.value)
        assert len(list(store.stream(wid, after=6))) == 3
        assert len(list(store.stream(other))) == 3
        assert store.cursor(wid) == 9

    def test_unencodable_metadata(self, store: Store) -> None:
        with pytest.raises(CodecError):
            store.create(_wid(), definition_name="n", definition_hash="h", metadata={"x": object()})
