"""The bounded-store part of the conformance suite: fenced snapshots, compaction of a log up
to its snapshot, pruning finished instances, and the collection of fact values that no
instance refers to any more.

:class:`~runeflow.testing.store_contract.StoreContract` includes these cases; they need only
the ``store`` fixture.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from runeflow.errors import LeaseLostError, StoreError, UsageError, WorkflowNotFoundError
from runeflow.model.events import Event, FactProduced, RunnableCompleted, RunnableDispatched
from runeflow.model.facts import Fact
from runeflow.stores.base import INLINE_VALUE_LIMIT, Store, Timer

__all__ = ["RetentionContract"]

BIG = "x" * (INLINE_VALUE_LIMIT * 2)
"""A value kept by content hash (longer than its hash), not in its fact's row."""


def _cycle(tag: str, value: Any = 1, fact_id: str | None = None) -> list[Event]:
    rid = f"r-{tag}-{uuid.uuid4().hex[:6]}"
    fact = Fact(fact_id or f"f-{rid}", value, "step", "h" * 16, (), (f"f-{rid}",))
    return [
        RunnableDispatched(runnable_id=rid, component="step"),
        FactProduced(fact, rid),
        RunnableCompleted(runnable_id=rid, component="step", duration=0.1),
    ]


def _fact_ids(events: list[Event]) -> list[str]:
    return [e.fact.id for e in events if isinstance(e, FactProduced)]


def _has_value(store: Store, fact_id: str) -> bool:
    try:
        store.load_fact(fact_id)
    except StoreError:
        return False
    return True


class RetentionContract:
    """Snapshots, ``compact``, ``prune`` and value collection (needs ``store``)."""

    def _started(self, store: Store, *, owner: str | None = None, status: str = "running") -> str:
        wid = f"wf-{uuid.uuid4().hex[:12]}"
        assert store.create(
            wid,
            definition_name="orders",
            definition_hash="abc",
            status=status,
            owner=owner,
            ttl=60,
        )
        return wid

    def _with_log(self, store: Store, cycles: int, value: Any = 1) -> tuple[str, list[Event]]:
        wid = self._started(store)
        events: list[Event] = []
        for i in range(cycles):
            cycle = _cycle(str(i), value)
            store.append(wid, cycle)
            events += cycle
        return wid, events

    # --- compaction -------------------------------------------------------------------------

    def test_compaction_removes_the_rows_the_snapshot_covers(self, store: Store) -> None:
        wid, events = self._with_log(store, 4)
        other, other_events = self._with_log(store, 2)
        updated = store.get(wid).updated_at
        assert store.compact(wid) == 0  # no snapshot yet: nothing to remove
        store.save_snapshot(wid, 6, b"state at 6", fact_ids=_fact_ids(events[:6]))
        before = store.stats()
        assert store.compact(wid) == 6
        assert store.stats()["events"] == before["events"] - 6
        meta = store.get(wid)
        assert (meta.cursor, meta.compacted, store.cursor(wid)) == (12, 6, 12)
        assert meta.updated_at == updated
        assert list(store.stream(wid, after=6)) == events[6:]
        assert list(store.stream(wid, after=9)) == events[9:]
        assert store.load_snapshot(wid) == (6, b"state at 6")
        assert store.compact(wid) == 0  # done already
        assert list(store.stream(other)) == other_events  # other instances untouched

    def test_a_compacted_log_is_not_read_from_its_start(self, store: Store) -> None:
        wid, _ = self._with_log(store, 3)
        store.save_snapshot(wid, 6, b"s", fact_ids=[])
        store.compact(wid)
        for after in (0, 5):
            with pytest.raises(StoreError, match="compacted") as info:
                store.stream(wid, after=after)
            assert info.value.workflow_id == wid and "stream(after=6)" in str(info.value)

    def test_appends_go_on_after_compaction(self, store: Store) -> None:
        wid, events = self._with_log(store, 2)
        store.save_snapshot(wid, 6, b"all", fact_ids=_fact_ids(events))
        assert store.compact(wid) == 6
        assert store.stats()["events"] == 0
        assert (store.cursor(wid), store.get(wid).cursor) == (6, 6)
        assert list(store.stream(wid, after=6)) == []
        more = _cycle("more")
        assert store.append(wid, more) == 9
        assert list(store.stream(wid, after=6)) == more
        assert list(store.stream(wid, after=7)) == more[1:]

    def test_a_snapshot_inside_a_row_keeps_that_row(self, store: Store) -> None:
        wid, events = self._with_log(store, 3)
        store.save_snapshot(wid, 5, b"at 5", fact_ids=_fact_ids(events))
        assert store.compact(wid) == 3  # the row of events 4-6 holds event 6, after 5
        assert store.get(wid).compacted == 3
        assert list(store.stream(wid, after=5)) == events[5:]
        assert list(store.stream(wid, after=3)) == events[3:]

    def test_a_snapshot_before_the_compacted_log_is_refused(self, store: Store) -> None:
        wid, events = self._with_log(store, 3)
        store.save_snapshot(wid, 6, b"at 6", fact_ids=_fact_ids(events))
        store.compact(wid)
        with pytest.raises(StoreError, match="compacted") as info:
            store.save_snapshot(wid, 3, b"older")
        assert info.value.workflow_id == wid
        assert store.load_snapshot(wid) == (6, b"at 6")
        store.save_snapshot(wid, 9, b"newer")
        assert store.load_snapshot(wid) == (9, b"newer")

    def test_a_snapshot_ahead_of_the_log_compacts_nothing(self, store: Store) -> None:
        wid, events = self._with_log(store, 2)
        store.save_snapshot(wid, 50, b"from the future")
        with pytest.raises(StoreError, match="ahead"):
            store.compact(wid)
        assert list(store.stream(wid)) == events

    def test_snapshots_and_compaction_are_fenced(self, store: Store) -> None:
        wid = self._started(store, owner="a")
        events = _cycle("1")
        store.append(wid, events, token=1)
        with pytest.raises(LeaseLostError):
            store.save_snapshot(wid, 3, b"stale", token=2)
        assert store.load_snapshot(wid) is None
        store.save_snapshot(wid, 3, b"ours", token=1)
        store.release_lease(wid, "a")
        assert store.acquire_lease(wid, "b", 60) == 2
        with pytest.raises(LeaseLostError):
            store.compact(wid, token=1)
        assert list(store.stream(wid)) == events
        assert store.compact(wid, token=2) == 3

    def test_unknown_instances(self, store: Store) -> None:
        with pytest.raises(WorkflowNotFoundError):
            store.compact("no-such-instance")
        with pytest.raises(WorkflowNotFoundError):
            store.save_snapshot("no-such-instance", 0, b"x")

    def test_compaction_collects_the_facts_the_snapshot_drops(self, store: Store) -> None:
        if not store.capabilities.fact_store:
            pytest.skip("store has no fact_store capability")
        wid = self._started(store)
        kept, dropped = _cycle("kept", BIG + "k"), _cycle("dropped", BIG + "d")
        small = _cycle("small", 7)
        store.append(wid, kept)
        store.append(wid, dropped)
        store.append(wid, small)
        contents = store.stats()["contents"]
        store.save_snapshot(wid, 9, b"s", fact_ids=_fact_ids(kept))
        assert store.compact(wid) == 9
        assert _has_value(store, _fact_ids(kept)[0])
        assert not _has_value(store, _fact_ids(dropped)[0])
        assert not _has_value(store, _fact_ids(small)[0])
        assert store.stats()["contents"] == contents - 1

    def test_a_snapshot_that_lists_no_facts_keeps_them_all(self, store: Store) -> None:
        wid, events = self._with_log(store, 2, BIG)
        store.save_snapshot(wid, 6, b"refers to unknown facts")  # fact_ids=None
        store.compact(wid)
        assert all(_has_value(store, fid) for fid in _fact_ids(events))

    # --- pruning ----------------------------------------------------------------------------

    def test_prune_deletes_only_finished_unheld_idle_instances(self, store: Store) -> None:
        made = {}
        for status in ("idle", "failed", "stopped", "running", "waiting"):
            made[status] = self._started(store, status=status)
        held = self._started(store, owner="live-runner", status="idle")
        timed = self._started(store, status="idle")
        store.schedule_timer(Timer(timer_id=f"t-{timed}", workflow_id=timed, fire_at=1e12))
        commanded = self._started(store, status="idle")
        store.schedule_timer(Timer(timer_id=f"c-{commanded}", workflow_id=commanded, fire_at=0))
        later = time.time() + 60
        finished = {made["idle"], made["failed"], made["stopped"]}
        assert set(store.prune(later, dry_run=True, limit=None)) == finished
        assert all(store.exists(w) for w in made.values())  # a dry run changes nothing
        assert set(store.prune(later, limit=100)) == finished
        assert not any(store.exists(w) for w in finished)
        for wid in (made["running"], made["waiting"], held, timed, commanded):
            assert store.exists(wid)
        assert store.timers(timed) and store.timers(commanded)
        assert store.prune(later) == []

    def test_prune_by_age_and_status_in_batches(self, store: Store) -> None:
        old = [self._started(store, status="idle") for _ in range(5)]
        failed = self._started(store, status="failed")
        time.sleep(0.02)
        threshold = time.time()
        time.sleep(0.02)
        young = self._started(store, status="idle")
        assert store.prune(threshold, ["failed"]) == [failed]
        first = store.prune(threshold, ["idle"], limit=2)
        assert len(first) == 2
        rest = store.prune(threshold, ("idle",), limit=10)
        assert sorted(first + rest) == sorted(old)
        assert store.exists(young)

    def test_an_append_makes_an_instance_young_again(self, store: Store) -> None:
        wid = self._started(store, status="idle")
        time.sleep(0.02)
        threshold = time.time()
        time.sleep(0.02)
        store.append(wid, _cycle("late"))
        assert store.prune(threshold) == [] and store.exists(wid)

    def test_prune_refuses_unfinished_statuses_and_bad_limits(self, store: Store) -> None:
        wid = self._started(store, status="running")
        for statuses in (["running"], ["idle", "waiting"], [], ["done"]):
            with pytest.raises(UsageError, match="finished"):
                store.prune(time.time() + 60, statuses)
        for limit in (0, -1, None, 1.5):
            with pytest.raises(UsageError, match="limit"):
                store.prune(time.time() + 60, limit=limit)  # type: ignore[arg-type]
        assert store.exists(wid)

    def test_prune_collects_what_only_the_pruned_referred_to(self, store: Store) -> None:
        if not store.capabilities.fact_store:
            pytest.skip("store has no fact_store capability")
        shared_value, own_value = BIG + "shared", BIG + "own"
        gone = self._started(store)
        gone_events = _cycle("g1", shared_value) + _cycle("g2", own_value) + _cycle("g3", 3)
        gone_events += _cycle("both", "same fact id", fact_id="f-shared-id")
        store.append(gone, gone_events)
        store.save_snapshot(gone, 12, b"s", fact_ids=_fact_ids(gone_events))
        store.set_status(gone, "idle")
        stays = self._started(store, status="running")
        stay_events = _cycle("s1", shared_value) + _cycle("x", "mine", fact_id="f-shared-id")
        store.append(stays, stay_events)
        contents = store.stats()["contents"]
        assert store.prune(time.time() + 60) == [gone]
        own, shared, small = _fact_ids(gone_events)[1], _fact_ids(gone_events)[0], "f-shared-id"
        assert not _has_value(store, own) and not _has_value(store, shared)
        assert not _has_value(store, _fact_ids(gone_events)[2])
        assert store.load_fact(small) == "mine"  # written by both: kept
        assert store.stats()["contents"] == contents - 1  # the shared value stays
        assert [e for e in store.stream(stays)] == stay_events
        assert store.load_snapshot(gone) is None

    def test_delete_collects_the_values_only_it_referred_to(self, store: Store) -> None:
        if not store.capabilities.fact_store:
            pytest.skip("store has no fact_store capability")
        wid, events = self._with_log(store, 2, BIG + "delete")
        before = store.stats()
        store.delete(wid)
        after = store.stats()
        assert not any(_has_value(store, fid) for fid in _fact_ids(events))
        assert after["contents"] == before["contents"] - 1
        assert after["facts"] == before["facts"] - 2
        store.delete(wid)  # unknown: nothing happens

    def test_concurrent_pruners_delete_each_instance_once(self, store: Store) -> None:
        ids = {self._started(store, status="idle") for _ in range(40)}
        threshold = time.time() + 60
        found: list[str] = []
        errors: list[BaseException] = []

        def prune() -> None:
            try:
                while batch := store.prune(threshold, limit=3):
                    found.extend(batch)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=prune) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(found) == sorted(ids)
