"""The batching part of the store conformance suite: timers written with an append, several
appends in one call, and appends from many threads at once.

:class:`~runeflow.testing.store_contract.StoreContract` includes these cases; they need only
the ``store`` fixture.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from runeflow.errors import CodecError, LeaseLostError, StoreError
from runeflow.model.events import Event, FactProduced, RunnableDispatched, TimerFired
from runeflow.model.facts import Fact
from runeflow.stores.base import Append, Store, Timer

__all__ = ["BatchContract"]


class _Unencodable:
    """A value no codec knows."""


def _events(tag: str, value: Any = 1) -> list[Event]:
    rid = f"r-{tag}-{uuid.uuid4().hex[:6]}"
    fact = Fact(f"f-{rid}", value, "step", "h" * 16, (), (f"f-{rid}",))
    return [RunnableDispatched(runnable_id=rid, component="step"), FactProduced(fact, rid)]


class BatchContract:
    """Appends with timers, ``append_many`` and concurrent appends (needs ``store``)."""

    def _make(self, store: Store, owner: str | None = None) -> str:
        wid = f"wf-{uuid.uuid4().hex[:12]}"
        assert store.create(
            wid, definition_name="orders", definition_hash="abc", owner=owner, ttl=60
        )
        return wid

    def test_append_keeps_and_removes_timers_in_its_transaction(self, store: Store) -> None:
        wid = self._make(store)
        timer = Timer(timer_id=f"t-{wid}", workflow_id=wid, fire_at=5.0, payload={"k": 1})
        assert store.append(wid, _events("a"), timers=[timer]) == 2
        assert store.timers(wid) == [timer]
        assert [t.timer_id for t in store.due_timers(10.0)] == [timer.timer_id]
        moved = Timer(timer_id=timer.timer_id, workflow_id=wid, fire_at=50.0, payload={"k": 2})
        assert store.append(wid, [], timers=[moved]) == 2  # same id: replaced
        assert store.timers(wid) == [moved] and store.due_timers(10.0) == []
        assert store.next_timer_at() == 50.0
        assert store.append(wid, [TimerFired(timer.timer_id)], done_timers=[timer.timer_id]) == 3
        assert store.timers(wid) == [] and store.next_timer_at() is None
        assert store.append(wid, [], done_timers=["never-armed"]) == 3  # nothing to remove

    def test_refused_append_changes_no_timer(self, store: Store) -> None:
        wid = self._make(store, owner="a")
        kept = Timer(timer_id=f"kept-{wid}", workflow_id=wid, fire_at=1.0)
        assert store.append(wid, [], timers=[kept], token=1) == 0
        new = Timer(timer_id=f"new-{wid}", workflow_id=wid, fire_at=2.0)
        try:
            store.append(wid, _events("x"), timers=[new], done_timers=[kept.timer_id], token=7)
        except LeaseLostError:
            pass
        else:
            raise AssertionError("a stale token was accepted")
        assert store.timers(wid) == [kept] and store.cursor(wid) == 0

    def test_append_many_refuses_each_append_on_its_own(self, store: Store) -> None:
        good, stale = self._make(store, owner="a"), self._make(store, owner="a")
        timer = Timer(timer_id=f"t-{stale}", workflow_id=stale, fire_at=1.0)
        results = store.append_many(
            [
                Append(workflow_id=good, events=_events("g"), status="waiting", token=1),
                Append(workflow_id=stale, events=_events("s"), token=2, timers=[timer]),
                Append(workflow_id="no-such-instance", events=_events("n")),
                Append(workflow_id=good, events=[*_events("u"), *_events("v", _Unencodable())]),
                Append(workflow_id=good, events=_events("h"), token=1),
            ]
        )
        assert results[0] == 2 and results[4] == 4
        assert isinstance(results[1], LeaseLostError) and results[1].workflow_id == stale
        assert isinstance(results[2], StoreError)
        assert isinstance(results[3], CodecError)
        assert store.cursor(good) == 4 and store.get(good).status == "waiting"
        assert store.cursor(stale) == 0 and store.timers(stale) == []
        assert store.get(stale).status == "running"
        facts = [e.fact.value for e in store.stream(good) if isinstance(e, FactProduced)]
        assert facts == [1, 1]

    def test_append_many_orders_appends_to_one_instance(self, store: Store) -> None:
        wid = self._make(store)
        first, second = _events("1", "first"), _events("2", "second")
        t1 = Timer(timer_id=f"t1-{wid}", workflow_id=wid, fire_at=1.0)
        results = store.append_many(
            [
                Append(workflow_id=wid, events=first, timers=[t1]),
                Append(workflow_id=wid, events=second, status="idle", done_timers=[t1.timer_id]),
            ]
        )
        assert results == [2, 4]
        assert list(store.stream(wid)) == [*first, *second]
        assert store.timers(wid) == [] and store.get(wid).status == "idle"
        assert store.append_many([]) == []

    def test_appends_from_many_threads_are_all_written_in_order(self, store: Store) -> None:
        ids = [self._make(store, owner="a") for _ in range(12)]
        per_thread = 40
        errors: list[BaseException] = []
        start = threading.Barrier(len(ids))

        def writer(wid: str) -> None:
            try:
                start.wait()
                for i in range(per_thread):
                    timer = Timer(timer_id=f"{wid}-{i}", workflow_id=wid, fire_at=float(i))
                    done = [f"{wid}-{i - 1}"] if i else []
                    cursor = store.append(
                        wid, _events(str(i), i), token=1, timers=[timer], done_timers=done
                    )
                    assert cursor == 2 * (i + 1)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(wid,)) for wid in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        for wid in ids:
            values = [e.fact.value for e in store.stream(wid) if isinstance(e, FactProduced)]
            assert values == list(range(per_thread))
            assert [t.timer_id for t in store.timers(wid)] == [f"{wid}-{per_thread - 1}"]
