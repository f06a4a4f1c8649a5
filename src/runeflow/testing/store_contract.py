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

Optional test hooks, for the bad-data cases (they skip, saying why, without them):

* a ``corrupt_event(workflow_id, cursor)`` method of the store that damages the stored row
  holding that event;
* a ``corrupt`` fixture returning a :class:`~runeflow.testing.store_corruption.Corrupter`,
  which changes the store's data behind its back (as a failing disk would): the cases of
  :class:`~runeflow.testing.store_corruption.CorruptionContract` check that damaged data
  raises :class:`~runeflow.errors.StoreError` naming it, never a wrong value, and that
  ``list()`` flags a damaged instance row. Stores whose data nothing outside the process can
  reach (like ``MemoryStore``) return ``None``.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from runeflow.errors import (
    CodecError,
    InstanceStateError,
    LeaseLostError,
    StoreError,
    WorkflowNotFoundError,
)
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
from runeflow.testing.store_batching import BatchContract
from runeflow.testing.store_corruption import Corrupter, CorruptionContract
from runeflow.testing.store_listing import ListingContract
from runeflow.testing.store_retention import RetentionContract

__all__ = ["Corrupter", "StoreContract", "make_cycle"]


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


class StoreContract(CorruptionContract, BatchContract, ListingContract, RetentionContract):
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

    def test_a_timer_needs_its_instance(self, store: Store) -> None:
        """A timer (a command or a resume for a runner) of an instance that does not exist,
        or no longer does (deleted or pruned meanwhile), is refused and nothing is stored."""
        with pytest.raises(WorkflowNotFoundError):
            store.schedule_timer(Timer(timer_id="t-nobody", workflow_id="nobody", fire_at=1.0))
        wid = self._created(store)
        store.delete(wid)
        with pytest.raises(WorkflowNotFoundError):
            store.schedule_timer(Timer(timer_id=f"t-{wid}", workflow_id=wid, fire_at=1.0))
        assert store.timers("nobody") == [] and store.timers(wid) == []
        assert all(t.workflow_id not in ("nobody", wid) for t in store.due_timers(2.0))

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

    def test_same_live_owner_keeps_token_and_release_keeps_it(self, store: Store) -> None:
        wid = self._created(store)
        assert store.acquire_lease("no-such-instance", "a", 30) is None
        t1 = store.acquire_lease(wid, "a", 30)
        assert t1 is not None and t1 >= 1
        assert store.acquire_lease(wid, "a", 30) == t1
        assert store.get(wid).epoch == t1
        store.release_lease(wid, "a")
        meta = store.get(wid)
        assert (meta.owner, meta.epoch) == (None, t1)
        assert store.append(wid, make_cycle(1), token=t1) == 3  # released, not taken over
        assert store.acquire_lease(wid, "a", 30) == t1 + 1  # a new grant, even to "a"
        store.release_lease(wid, "a")
        assert store.acquire_lease(wid, "b", 30) == t1 + 2
        assert store.get(wid).owner == "b"

    def test_acquire_with_expect(self, store: Store) -> None:
        mine, taken = self._created(store), self._created(store)
        t_mine = store.acquire_lease(mine, "a", 0.05)
        t_taken = store.acquire_lease(taken, "a", 0.05)
        assert t_mine is not None and t_taken is not None
        time.sleep(0.1)
        assert store.acquire_lease(mine, "a", 30, expect=t_mine + 1) is None
        assert store.get(mine).epoch == t_mine
        assert store.acquire_lease(mine, "a", 30, expect=t_mine) == t_mine + 1
        assert store.lease_owner(mine) == "a"
        assert store.acquire_lease(taken, "b", 0.05) == t_taken + 1
        assert store.acquire_lease(taken, "a", 30, expect=t_taken) is None
        time.sleep(0.1)  # b's lease is gone too, but the token moved on
        assert store.acquire_lease(taken, "a", 30, expect=t_taken) is None
        meta = store.get(taken)
        assert (meta.owner, meta.epoch) == (None, t_taken + 1)

    def test_renew_leases_of_one_owner(self, store: Store) -> None:
        long, short, expired, others = (self._created(store) for _ in range(4))
        t_long = store.acquire_lease(long, "a", 30)
        t_short = store.acquire_lease(short, "a", 0.5)
        assert store.acquire_lease(expired, "a", 0.05)
        assert store.acquire_lease(others, "b", 30)
        time.sleep(0.1)
        assert store.renew_leases("a", 30) == {long: t_long, short: t_short}
        assert store.renew_leases("nobody", 30) == {}
        time.sleep(0.5)  # past the short lease's first ttl
        assert store.lease_owner(short) == "a"
        assert store.lease_owner(expired) is None
        assert store.lease_owner(others) == "b"
        assert store.get(short).epoch == t_short

    def test_live_owners(self, store: Store) -> None:
        assert store.live_owners() == []
        wids = [self._created(store) for _ in range(5)]
        for wid, owner, ttl in zip(
            wids, ["a", "a", "b", "gone", "c"], [30, 30, 30, 0.05, 30], strict=True
        ):
            assert store.acquire_lease(wid, owner, ttl)
        store.release_lease(wids[4], "c")
        time.sleep(0.1)
        assert sorted(store.live_owners()) == ["a", "b"]

    # --- fencing and claims -----------------------------------------------------------------

    def test_create_leased(self, store: Store) -> None:
        wid = self._created(store, owner="a", ttl=30)
        meta = store.get(wid)
        assert (meta.owner, meta.epoch) == ("a", 1)
        assert store.lease_owner(wid) == "a"
        assert store.acquire_lease(wid, "b", 30) is None
        assert store.acquire_lease(wid, "a", 30) == 1
        assert store.append(wid, make_cycle(1), token=1) == 3
        free = store.get(self._created(store))
        assert (free.owner, free.epoch, free.error) == (None, 0, None)

    def test_stale_token_is_refused_and_writes_nothing(self, store: Store) -> None:
        wid = self._created(store)
        t1 = store.acquire_lease(wid, "a", 0.05)
        assert t1 is not None
        assert store.append(wid, make_cycle(1), token=t1) == 3
        time.sleep(0.1)
        t2 = store.acquire_lease(wid, "b", 30)
        assert t2 == t1 + 1
        before = list(store.stream(wid))
        for events in (make_cycle(2), []):
            with pytest.raises(LeaseLostError) as info:
                store.append(wid, events, status="failed", token=t1)
            assert isinstance(info.value, InstanceStateError)
            assert info.value.workflow_id == wid
        with pytest.raises(LeaseLostError):
            store.append(wid, make_cycle(3), token=t2 + 1)  # a token never granted
        meta = store.get(wid)
        assert (meta.cursor, meta.status, meta.epoch, meta.owner) == (3, "running", t2, "b")
        assert store.cursor(wid) == 3
        assert list(store.stream(wid)) == before
        assert store.append(wid, make_cycle(4), status="waiting", token=t2) == 6
        assert store.get(wid).status == "waiting"

    def test_stale_token_never_writes_under_concurrency(self, store: Store) -> None:
        for _ in range(3):
            self._steal_while_writing(store)

    def _steal_while_writing(self, store: Store) -> None:
        """One round: "a" appends with its token while "b" takes the instance over."""
        wid = self._created(store)
        t_a = store.acquire_lease(wid, "a", 0.05)
        assert t_a is not None
        stolen = threading.Event()
        late_writes: list[int] = []
        failures: list[BaseException] = []

        def writer() -> None:
            deadline = time.monotonic() + 10
            i = 0
            try:
                while time.monotonic() < deadline:
                    after_steal = stolen.is_set()
                    i += 1
                    store.append(wid, make_cycle(i, value={"by": "a"}), token=t_a)
                    if after_steal:
                        late_writes.append(i)
            except LeaseLostError:
                return
            except BaseException as exc:
                failures.append(exc)
                return
            failures.append(AssertionError("the stale writer was never fenced off"))

        def stealer() -> None:
            try:
                while (t_b := store.acquire_lease(wid, "b", 0.05)) is None:
                    time.sleep(0.005)
                stolen.set()
                for i in range(3):
                    store.append(wid, make_cycle(1000 + i, value={"by": "b"}), token=t_b)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=writer), threading.Thread(target=stealer)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == [] and late_writes == []
        writers = [e.fact.value["by"] for e in store.stream(wid) if isinstance(e, FactProduced)]
        assert writers[-3:] == ["b", "b", "b"] and "b" not in writers[:-3]
        assert store.get(wid).epoch == t_a + 1

    def test_claim_takes_instances_with_work_and_no_live_owner(self, store: Store) -> None:
        def made(status: str = "running", timer_at: float | None = None) -> str:
            wid = self._created(store, status=status)
            if timer_at is not None:
                store.schedule_timer(Timer(timer_id=f"t-{wid}", workflow_id=wid, fire_at=timer_at))
            return wid

        free, expired, live, dead, excluded = (made() for _ in range(5))
        waiting_due, idle_due = made("waiting", 10.0), made("idle", 100.0)
        waiting_later, idle_nothing = made("waiting", 1000.0), made("idle")
        assert store.acquire_lease(expired, "x", 0.05)
        assert store.acquire_lease(live, "other", 30)
        assert store.acquire_lease(dead, "dead-runner", 30)
        time.sleep(0.1)
        before = {m.workflow_id: m.epoch for m in store.list()}
        claimed = dict(store.claim("me", 30, limit=100, timers_due=100.0, exclude=[excluded]))
        assert set(claimed) == {free, expired, waiting_due, idle_due}
        for wid, token in claimed.items():
            assert token == before[wid] + 1 == store.get(wid).epoch
            assert store.lease_owner(wid) == "me"
        again = store.claim("me2", 30, limit=100, timers_due=100.0, dead_owners=["dead-runner"])
        assert dict(again) == {dead: before[dead] + 1, excluded: 1}
        assert store.lease_owner(dead) == "me2" and store.lease_owner(live) == "other"
        assert store.claim("me3", 30, limit=100, timers_due=100.0) == []
        for wid in (waiting_later, idle_nothing):
            meta = store.get(wid)
            assert (meta.owner, meta.epoch) == (None, 0)

    def test_claim_respects_limit(self, store: Store) -> None:
        wids = {self._created(store) for _ in range(5)}
        first = store.claim("a", 30, limit=2, timers_due=0.0)
        second = store.claim("b", 30, limit=2, timers_due=0.0)
        third = store.claim("c", 30, limit=2, timers_due=0.0)
        assert (len(first), len(second), len(third)) == (2, 2, 1)
        assert {w for w, _ in first + second + third} == wids
        assert all(token == 1 for _, token in first + second + third)
        assert store.claim("d", 30, limit=2, timers_due=0.0) == []

    def test_concurrent_claims_are_disjoint(self, store: Store) -> None:
        wids = {self._created(store) for _ in range(12)}
        barrier = threading.Barrier(4)
        results: dict[str, list[list[tuple[str, int]]]] = {}

        def claimer(owner: str) -> None:
            barrier.wait()
            batches = results.setdefault(owner, [])
            for _ in range(13):  # bounded: a store that hands out live leases must not hang
                batch = store.claim(owner, 30, limit=5, timers_due=0.0)
                if not batch:
                    break
                batches.append(batch)

        threads = [threading.Thread(target=claimer, args=(f"r{k}",)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        claimed = [wid for batches in results.values() for b in batches for wid, _ in b]
        assert all(len(b) <= 5 for batches in results.values() for b in batches)
        assert len(claimed) == len(set(claimed)) == 12 and set(claimed) == wids
        for owner, batches in results.items():
            for wid, token in (item for b in batches for item in b):
                assert token == 1 and store.lease_owner(wid) == owner

    def test_create_with_events_and_timers(self, store: Store) -> None:
        wid = _wid()
        events = [WorkflowCreated(name="orders", outputs=()), *make_cycle(1)]
        timers = [
            Timer(timer_id=f"t{k}-{wid}", workflow_id=wid, fire_at=at, payload={"k": k})
            for k, at in enumerate((0.0, 50.0))
        ]
        assert store.create(
            wid,
            definition_name="orders",
            definition_hash="abc",
            events=events,
            timers=timers,
            owner="a",
            ttl=30,
        )
        assert list(store.stream(wid)) == events
        assert store.cursor(wid) == len(events) == store.get(wid).cursor
        assert store.timers(wid) == timers
        assert store.get(wid).epoch == 1
        intruder = Timer(timer_id=f"intruder-{wid}", workflow_id=wid, fire_at=1.0)
        assert not store.create(
            wid,
            definition_name="orders",
            definition_hash="abc",
            events=make_cycle(2),
            timers=[intruder],
            owner="b",
            ttl=30,
        )
        assert list(store.stream(wid)) == events
        assert store.timers(wid) == timers
        assert intruder.timer_id not in {t.timer_id for t in store.due_timers(1e18, limit=1000)}
        meta = store.get(wid)
        assert (meta.owner, meta.epoch, meta.cursor) == ("a", 1, len(events))

    def test_due_timers_of_one_owner(self, store: Store) -> None:
        mine, theirs, nobodys, lapsed, later = (self._created(store) for _ in range(5))
        for wid, at in ((mine, 1.0), (theirs, 2.0), (nobodys, 3.0), (lapsed, 4.0), (later, 500.0)):
            store.schedule_timer(Timer(timer_id=f"t-{wid}", workflow_id=wid, fire_at=at))
        assert store.acquire_lease(mine, "a", 30)
        assert store.acquire_lease(later, "a", 30)
        assert store.acquire_lease(theirs, "b", 30)
        assert store.acquire_lease(lapsed, "a", 0.05)
        time.sleep(0.1)
        assert [t.workflow_id for t in store.due_timers(100.0, owner="a")] == [mine]
        assert [t.workflow_id for t in store.due_timers(100.0, owner="b")] == [theirs]
        assert store.due_timers(100.0, owner="nobody") == []
        everything = [t.workflow_id for t in store.due_timers(100.0)]
        assert everything == [mine, theirs, nobodys, lapsed]

    def test_set_error(self, store: Store) -> None:
        wid = self._created(store)
        store.append(wid, make_cycle(1), status="waiting")
        store.set_error(wid, "cannot import pkg.mod")
        meta = store.get(wid)
        assert (meta.error, meta.status, meta.cursor) == ("cannot import pkg.mod", "waiting", 3)
        assert [m.error for m in store.list() if m.workflow_id == wid] == ["cannot import pkg.mod"]
        store.set_error(wid, None)
        assert store.get(wid).error is None
        with pytest.raises(WorkflowNotFoundError):
            store.set_error("nope", "x")

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
