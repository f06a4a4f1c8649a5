"""Real processes: concurrent writers on one SQLite file, and SIGKILL in the middle of appends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PG_DSN
from runeflow.model.events import FactProduced, RunnableCompleted, RunnableDispatched
from runeflow.stores import SQLiteStore, Store

WORKER = str(Path(__file__).with_name("_helpers_store_worker.py"))
BATCH = 9

pytestmark = pytest.mark.slow


def spawn(kind: str, target: str, workflow_id: str, batches: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, kind, target, workflow_id, str(batches), str(BATCH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_whole_batches(store: Store, workflow_id: str) -> int:
    """Every batch in the log is complete and decodable; return the number of batches."""
    events = list(store.stream(workflow_id))
    assert len(events) % BATCH == 0
    assert store.cursor(workflow_id) == len(events)
    for start in range(0, len(events), 3):
        dispatched, produced, completed = events[start : start + 3]
        assert isinstance(dispatched, RunnableDispatched)
        assert isinstance(produced, FactProduced) and produced.fact.value["pad"] == "x" * 200
        assert isinstance(completed, RunnableCompleted)
        assert dispatched.runnable_id == produced.runnable_id == completed.runnable_id
    return len(events) // BATCH


def test_two_processes_append_to_one_sqlite_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteStore(path).close()
    children = [spawn("sqlite", path, f"wf-{k}", 150) for k in range(2)]
    for child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    with SQLiteStore(path) as store:
        assert [check_whole_batches(store, f"wf-{k}") for k in range(2)] == [150, 150]


def kill_mid_loop(kind: str, target: str, workflow_id: str) -> int:
    """Start a writer, SIGKILL it after some commits; return how many it reported."""
    child = spawn(kind, target, workflow_id, 100_000)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    reported = 0
    while reported < 40:
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else "worker ended"
        reported += 1
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    return reported


def test_sigkill_leaves_whole_appends_sqlite(tmp_path: Path) -> None:
    path = str(tmp_path / "crash.db")
    reported = kill_mid_loop("sqlite", path, "victim")
    with SQLiteStore(path) as store:
        assert check_whole_batches(store, "victim") >= reported


@pytest.mark.postgres
def test_sigkill_leaves_whole_appends_postgres(pg_store: Store) -> None:
    from runeflow.stores.postgres import PostgresStore

    assert isinstance(pg_store, PostgresStore)
    schema = pg_store.schema
    reported = kill_mid_loop("postgres", f"{PG_DSN}|{schema}", "victim")
    assert check_whole_batches(pg_store, "victim") >= reported
