"""Group commit: appends made at once share a transaction, each still refused on its own."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import PG_DSN
from runeflow.errors import LeaseLostError, StoreError
from runeflow.model.events import Event, FactProduced, RunnableDispatched
from runeflow.model.facts import Fact
from runeflow.stores import SQLiteStore, Store
from runeflow.stores.base import Append
from runeflow.stores.batching import GroupCommit


def _batches(write_gate: threading.Event, sizes: list[int]) -> GroupCommit[int]:
    """A GroupCommit whose first write waits for ``write_gate``; results echo the items."""

    def write(items: list[int]) -> list[int | Exception]:
        sizes.append(len(items))
        if len(sizes) == 1:
            assert write_gate.wait(5)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    return GroupCommit(write, max_batch=8)


def test_a_lone_submit_is_written_at_once() -> None:
    sizes: list[int] = []
    gate = threading.Event()
    gate.set()
    commits = _batches(gate, sizes)
    assert commits.submit(2) == 20
    assert commits.submit(4) == 40
    assert sizes == [1, 1]


def test_submits_arriving_during_a_write_share_the_next_one() -> None:
    sizes: list[int] = []
    gate = threading.Event()
    commits = _batches(gate, sizes)
    results: dict[int, Any] = {}

    def submit(i: int) -> None:
        results[i] = commits.submit(i)

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    while not sizes:  # the first write is in progress
        time.sleep(0.001)
    others = [threading.Thread(target=submit, args=(i,)) for i in range(1, 12)]
    for thread in others:
        thread.start()
    while len(commits._queue) < 11:
        time.sleep(0.001)
    gate.set()
    for thread in [first, *others]:
        thread.join(5)
    # the first alone; then the eleven queued ones, at most eight per transaction
    assert sizes[0] == 1 and sum(sizes) == 12 and max(sizes[1:]) == 8 and len(sizes) == 3
    assert (commits.batches, commits.items) == (3, 12)
    for i in range(12):
        if i % 2:
            assert isinstance(results[i], ValueError) and str(results[i]) == f"odd {i}"
        else:
            assert results[i] == i * 10


def test_several_writers_write_at_once_and_the_rest_queue() -> None:
    """With ``max_writers=2`` two batches are written at the same time; what arrives while
    both are busy waits and then shares one batch."""
    gate = threading.Event()
    writing: list[list[int]] = []
    both = threading.Barrier(2, timeout=5)

    def write(items: list[int]) -> list[int | Exception]:
        writing.append(items)
        if len(writing) <= 2:
            both.wait()  # breaks unless the two first writes are in progress together
            assert gate.wait(5)
        return [i * 10 for i in items]

    commits: GroupCommit[int] = GroupCommit(write, max_writers=2)
    results: dict[int, Any] = {}

    def submit(i: int) -> None:
        results[i] = commits.submit(i)

    leaders = [threading.Thread(target=submit, args=(i,)) for i in (0, 1)]
    for thread in leaders:
        thread.start()
    while len(writing) < 2:
        time.sleep(0.001)
    queued = [threading.Thread(target=submit, args=(i,)) for i in range(2, 6)]
    for thread in queued:
        thread.start()
    while len(commits._queue) < 4:
        time.sleep(0.001)
    gate.set()
    for thread in [*leaders, *queued]:
        thread.join(5)
    assert results == {i: i * 10 for i in range(6)}
    assert sorted(len(w) for w in writing[:2]) == [1, 1]
    assert sum(len(w) for w in writing[2:]) == 4 and len(writing) <= 4
    assert commits.submit(9) == 90 and commits._writers == 0
    with pytest.raises(ValueError, match="max_writers"):
        GroupCommit(write, max_writers=0)


def test_a_failed_write_fails_every_item_of_its_batch_and_the_writer_goes_on() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def write(items: list[int]) -> list[int | Exception]:
        calls.append(items)
        if len(calls) == 1:
            assert gate.wait(5)
            return [1]
        if len(calls) == 2:
            raise StoreError("disk on fire")
        return [i for i in items]

    commits: GroupCommit[int] = GroupCommit(write)
    outcomes: dict[int, Any] = {}

    def submit(i: int) -> None:
        try:
            outcomes[i] = commits.submit(i)
        except StoreError as exc:
            outcomes[i] = exc

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    while not calls:
        time.sleep(0.001)
    queued = [threading.Thread(target=submit, args=(i,)) for i in (1, 2, 3)]
    for thread in queued:
        thread.start()
    while len(commits._queue) < 3:
        time.sleep(0.001)
    gate.set()
    for thread in [first, *queued]:
        thread.join(5)
    assert outcomes[0] == 1
    assert all(isinstance(outcomes[i], StoreError) for i in (1, 2, 3))
    assert commits.submit(7) == 7  # the writer is free again


def _fact_events(i: int) -> list[Event]:
    fact = Fact(f"f{i}-{time.time_ns()}", i, "s", "h" * 16, (), (f"p{i}",))
    return [RunnableDispatched(runnable_id=f"r{i}", component="s"), FactProduced(fact, None)]


def _appends_while_blocked(store: Store, block: Any, threads: int = 8) -> tuple[int, int]:
    """Each of ``threads`` threads appends once while ``block`` holds the store's write
    lock (the first append waits for it, the others queue up), then three more times.
    Return the transactions and the appends the store's group commit wrote for them."""
    ids = [f"w{k}" for k in range(threads)]
    for wid in ids:
        store.create(wid, definition_name="d", definition_hash="h", owner="o", ttl=60)
    commits = store._commits  # type: ignore[attr-defined]
    batches, items = commits.batches, commits.items
    errors: list[BaseException] = []

    def run(wid: str) -> None:
        try:
            for i in range(4):
                assert store.append(wid, _fact_events(i), token=1) == 2 * (i + 1)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(wid,)) for wid in ids]
    with block():
        for thread in workers:
            thread.start()
        deadline = time.monotonic() + 5
        # the first max_writers appends each lead a transaction (and wait for the lock)
        while len(commits._queue) < threads - commits.max_writers and time.monotonic() < deadline:
            time.sleep(0.005)
    for thread in workers:
        thread.join()
    assert errors == []
    for wid in ids:
        values = [e.fact.value for e in store.stream(wid) if isinstance(e, FactProduced)]
        assert values == [0, 1, 2, 3]
    return commits.batches - batches, commits.items - items


def test_sqlite_appends_made_at_once_share_a_transaction(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "group.db")

    @contextmanager
    def block() -> Iterator[None]:
        with sqlite3.connect(tmp_path / "group.db", isolation_level=None) as conn:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("COMMIT")
        conn.close()

    batches, items = _appends_while_blocked(store, block)
    assert items == 32
    # the seven appends queued behind the blocked one went in one transaction
    assert batches <= items - 6, (batches, items)
    store.close()


@pytest.mark.postgres
def test_postgres_appends_made_at_once_share_a_transaction(pg_store: Store) -> None:
    import psycopg

    schema = pg_store.schema  # type: ignore[attr-defined]

    @contextmanager
    def block() -> Iterator[None]:
        with psycopg.connect(PG_DSN) as conn:
            conn.execute(f'LOCK TABLE "{schema}".events IN EXCLUSIVE MODE')
            yield
            conn.commit()

    batches, items = _appends_while_blocked(pg_store, block)
    assert items == 32
    # several appends are written at once (one per connection but one); the five queued
    # behind them went in one transaction
    writers = pg_store._commits.max_writers  # type: ignore[attr-defined]
    assert writers == 3  # the default pool has four connections
    assert batches <= items - (8 - writers - 1), (batches, items)


def test_a_failed_transaction_writes_none_of_its_appends(tmp_path: Path) -> None:
    """A fault injected into the database: the whole transaction fails, nothing is written,
    and the store works again afterwards."""
    path = tmp_path / "faults.db"
    store = SQLiteStore(path)
    for wid in ("good", "poison"):
        store.create(wid, definition_name="d", definition_hash="h", owner="o", ttl=60)
    with sqlite3.connect(path) as conn:
        conn.execute(
            """CREATE TRIGGER injected BEFORE INSERT ON runeflow_events
            WHEN NEW.workflow_id = 'poison' BEGIN SELECT RAISE(ABORT, 'injected fault'); END"""
        )
    conn.close()
    batch = [
        Append(workflow_id="good", events=_fact_events(1), token=1),
        Append(workflow_id="poison", events=_fact_events(2), token=1),
    ]
    with pytest.raises(StoreError, match="injected fault"):
        store.append_many(batch)
    assert store.cursor("good") == 0 and store.cursor("poison") == 0
    assert store.append("good", _fact_events(3), token=1) == 2
    results = store.append_many([batch[0], Append(workflow_id="good", token=5)])
    assert results[0] == 4 and isinstance(results[1], LeaseLostError)
    store.close()


@pytest.mark.postgres
def test_postgres_shared_appends_and_lease_renewals_never_deadlock(pg_store: Store) -> None:
    """Appends to many instances sharing transactions, while their owner renews its leases
    all at once: both lock the instance rows, in the same order, so neither is ever
    aborted as a deadlock victim."""
    ids = [f"d{k:02d}" for k in range(24)]
    for wid in ids:
        pg_store.create(wid, definition_name="d", definition_hash="h", owner="o", ttl=60)
    errors: list[BaseException] = []
    stop = threading.Event()

    def appender(k: int) -> None:
        mine = ids[k::6][::-1] if k % 2 else ids[k::6]  # threads take rows in other orders
        i = 0
        try:
            while not stop.is_set():
                for wid in mine:
                    pg_store.append(wid, _fact_events(i), token=1)
                i += 1
        except BaseException as exc:
            errors.append(exc)

    def renewer() -> None:
        try:
            while not stop.is_set():
                assert set(pg_store.renew_leases("o", 60)) == set(ids)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(k,)) for k in range(6)]
    threads.append(threading.Thread(target=renewer))
    for thread in threads:
        thread.start()
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert pg_store._commits.batches < pg_store._commits.items  # type: ignore[attr-defined]
