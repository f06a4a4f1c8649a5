"""A saga killed with SIGKILL while compensating, recovered in another process: the
compensation resumes and completes, and nothing checkpointed runs twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import runeflow as rf
from _saga_flows import build_trip

TESTS = Path(__file__).resolve().parent
CHILD = TESTS / "_saga_crash_child.py"


def kill_mid_compensation(spec: str, store: rf.Store, counter: Path) -> set[str]:
    """Run the saga in a child until the flight's compensation is in flight, SIGKILL it;
    return the components the store has as completed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["RUNEFLOW_COUNTER"] = str(counter)
    env["SAGA_HANG"] = "1"
    child = subprocess.Popen([sys.executable, str(CHILD), spec], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while "cancel_flight" not in (counter.read_text() if counter.exists() else ""):
        assert time.monotonic() < deadline, "the compensation never started"
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    log = list(store.stream("trip-1"))
    return {e.component for e in log if isinstance(e, rf.events.RunnableCompleted)}


def recover_and_check(
    store: rf.Store, counter: Path, done_before: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # killed mid-compensation: the hotel is released, the flight's refund was in flight
    assert "booking.undo.hotel" in done_before
    assert "booking.undo.flight" not in done_before and "booking" not in done_before
    assert store.get("trip-1").status == "running"

    monkeypatch.setenv("RUNEFLOW_COUNTER", str(counter))
    monkeypatch.delenv("SAGA_HANG", raising=False)
    with rf.Runner(store=store, workflows=[build_trip]) as runner:  # recovers at start
        info = runner.wait("trip-1", timeout=30)
        assert info.status is rf.Status.IDLE, info.error
        (outcome,) = runner.get_results("trip-1", components=["booking"], all=True)["booking"]
    assert outcome["status"] == "aborted" and outcome["failed_step"] == "charge"
    assert outcome["compensated"] == {"hotel": "released HT-42", "flight": "refunded FL-42"}

    runs = Counter(counter.read_text().split())
    names = {
        "booking.flight": "book_flight",
        "booking.hotel": "book_hotel",
        "booking.charge": "charge_card",
        "booking.undo.hotel": "cancel_hotel",
    }
    for component, fn in names.items():
        assert component in done_before
        assert runs[fn] == 1, f"{fn} was checkpointed as done but ran {runs[fn]} times"
    assert runs["cancel_flight"] == 2  # in flight at the kill: run again, to completion
    rebuilt = rf.Workflow.from_events(store.stream("trip-1"), definition=build_trip)
    assert rebuilt.raw_productions("booking") == [outcome]


@pytest.mark.slow
def test_saga_compensation_resumes_after_sigkill_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "saga.db"
    counter = tmp_path / "counter.txt"
    done = kill_mid_compensation(f"sqlite:{db}", rf.SQLiteStore(db), counter)
    recover_and_check(rf.SQLiteStore(db), counter, done, monkeypatch)


@pytest.mark.slow
@pytest.mark.postgres
def test_saga_compensation_resumes_after_sigkill_on_postgres(
    tmp_path: Path, pg_store: rf.Store, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import PG_DSN

    counter = tmp_path / "counter.txt"
    done = kill_mid_compensation(f"pg:{PG_DSN}|{pg_schema}", pg_store, counter)
    recover_and_check(pg_store, counter, done, monkeypatch)
