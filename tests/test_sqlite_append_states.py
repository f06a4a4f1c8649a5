"""SQLite keeps what its own last append to an instance left (position, fencing token,
status) and skips reading it again; whatever else changes the instance, through this
connection, another thread's or another process's, must make it read again."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from runeflow.errors import LeaseLostError, StoreError
from runeflow.model.events import Event, FactProduced, RunnableDispatched
from runeflow.model.facts import Fact
from runeflow.stores import SQLiteStore


def _events(i: int) -> list[Event]:
    fact = Fact(f"f{i}-{time.time_ns()}", i, "s", "h" * 16, (), (f"p{i}",))
    return [RunnableDispatched(runnable_id=f"r{i}", component="s"), FactProduced(fact, None)]


def _known(store: SQLiteStore, wid: str) -> object:
    """What this thread's connection keeps of ``wid`` (None: it will read it again)."""
    return store._local.known.states.get(wid)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "states.db")
    s.create("w", definition_name="d", definition_hash="h", owner="a", ttl=0.05)
    return s


def test_a_repeated_append_skips_reading_the_state_and_lands_in_place(store: SQLiteStore) -> None:
    assert store.append("w", _events(0), token=1, status="running") == 2
    assert _known(store, "w") == (2, 1, "running")
    assert store.append("w", _events(1), token=1, status="waiting") == 4
    assert _known(store, "w") == (4, 1, "waiting")
    assert store.get("w").status == "waiting"
    assert [e.fact.value for e in store.stream("w") if isinstance(e, FactProduced)] == [0, 1]


def test_a_new_owner_on_the_same_connection_fences_the_old_token(store: SQLiteStore) -> None:
    store.append("w", _events(0), token=1)
    time.sleep(0.06)  # the lease expires
    assert store.acquire_lease("w", "b", 60) == 2  # same thread, same connection
    assert _known(store, "w") is None
    with pytest.raises(LeaseLostError):
        store.append("w", _events(1), token=1)
    assert store.append("w", _events(2), token=2) == 4


def test_a_new_owner_on_another_thread_fences_the_old_token(store: SQLiteStore) -> None:
    store.append("w", _events(0), token=1)
    time.sleep(0.06)
    tokens: list[int | None] = []
    thread = threading.Thread(target=lambda: tokens.append(store.acquire_lease("w", "b", 60)))
    thread.start()
    thread.join()
    assert tokens == [2]
    with pytest.raises(LeaseLostError):
        store.append("w", _events(1), token=1)


def test_writes_from_another_process_are_seen(store: SQLiteStore, tmp_path: Path) -> None:
    """Another connection (as another process would) appends to the instance and then moves
    its fencing token: this connection's next append lands after that append, and then is
    refused."""
    store.append("w", _events(0), token=1)
    other = SQLiteStore(tmp_path / "states.db")
    assert other.append("w", _events(1), token=1) == 4
    assert store.append("w", _events(2), token=1) == 6  # not 4: it read the state again
    other.close()
    with sqlite3.connect(tmp_path / "states.db", isolation_level=None) as raw:
        raw.execute("UPDATE runeflow_instances SET epoch = 7 WHERE workflow_id = 'w'")
    raw.close()
    with pytest.raises(LeaseLostError, match="it is at 7"):
        store.append("w", _events(3), token=1)
    assert store.cursor("w") == 6


def test_a_status_set_on_the_same_connection_is_not_overwritten(store: SQLiteStore) -> None:
    store.append("w", _events(0), token=1, status="running")
    store.set_status("w", "stopped")
    store.append("w", _events(1), token=1, status="running")
    assert store.get("w").status == "running"  # it was stopped, so the append wrote it
    store.set_status("w", "stopped")
    store.append("w", _events(2), token=1)
    assert store.get("w").status == "stopped"


def test_a_failed_append_is_not_kept(store: SQLiteStore, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "states.db") as raw:
        raw.execute(
            """CREATE TRIGGER injected AFTER INSERT ON runeflow_events WHEN NEW.first >= 5
            BEGIN SELECT RAISE(ABORT, 'injected fault'); END"""
        )
    raw.close()
    store.append("w", _events(0), token=1)
    assert store.append("w", _events(1), token=1) == 4
    assert _known(store, "w") == (4, 1, "running")
    with pytest.raises(StoreError, match="injected fault"):
        store.append("w", _events(2), token=1)
    assert _known(store, "w") is None
    with sqlite3.connect(tmp_path / "states.db") as raw:
        raw.execute("DROP TRIGGER injected")
    raw.close()
    assert store.append("w", _events(3), token=1) == 6
    assert [e.fact.value for e in store.stream("w") if isinstance(e, FactProduced)] == [0, 1, 3]


def test_a_deleted_and_recreated_instance_starts_again(store: SQLiteStore) -> None:
    store.append("w", _events(0), token=1)
    store.delete("w")
    with pytest.raises(StoreError, match="unknown workflow"):
        store.append("w", _events(1), token=1)
    store.create("w", definition_name="d", definition_hash="h", owner="a", ttl=60)
    assert store.append("w", _events(2), token=1) == 2


def test_what_is_kept_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One connection appending to ever more instances (a long-lived runner on one thread)
    keeps at most KNOWN_INSTANCES of them, and appends stay right when it starts over."""
    from runeflow.stores import _sqlite_writes

    monkeypatch.setattr(_sqlite_writes, "KNOWN_INSTANCES", 3)
    s = SQLiteStore(tmp_path / "bounded.db")
    for k in range(10):
        s.create(f"i{k}", definition_name="d", definition_hash="h")
        assert s.append(f"i{k}", _events(k)) == 2
        assert len(s._local.known.states) <= 3
    for k in range(10):
        assert s.append(f"i{k}", _events(k)) == 4
