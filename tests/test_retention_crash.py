"""Compaction under real crashes: a process that snapshots and compacts a state machine's log
at nearly every input is SIGKILLed at random moments, again and again; after every kill the
store rebuilds the exact state (every acknowledged input counted once, none lost), and a
last process finishes the count."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import runeflow as rf
from _retention_child import counter
from runeflow.recovery import load_workflow

TESTS = Path(__file__).resolve().parent
CHILD = TESTS / "_retention_child.py"
KILLS = 6
TOTAL = 100_000  # more than a child gets through before it is killed


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return env


def run_until_killed(spec: str, rng: random.Random) -> int:
    """Start a child, let it acknowledge inputs for a random while, SIGKILL it; return the
    last input it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), spec, str(TOTAL)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[int] = []
    assert child.stdout is not None

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("acked "):
                acked.append(int(line.split()[1]))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while len(acked) < 20 and time.monotonic() < deadline:  # it is up and compacting
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.6))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    reader.join(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert acked, "the child acknowledged nothing"
    return acked[-1]


def check_exact(store: rf.Store, acked: int) -> int:
    """The stored instance holds inputs 1..m (m >= the last acknowledged one) once each, and
    finishing what was in flight counts exactly them; return m."""
    wf = load_workflow(store, "c", counter)
    inputs = [f.value for f in wf._input_facts]  # type: ignore[union-attr]
    m = len(inputs)
    assert inputs == list(range(1, m + 1)), "an input was lost or doubled"
    assert m >= acked, f"input {acked} was acknowledged but is not in the store"
    wf.requeue_in_flight()
    wf.react_until_satisfied()
    assert wf.state_of("counter") == {"n": m, "total": m * (m + 1) // 2}
    return m


def kill_repeatedly(spec: str, store: rf.Store) -> None:
    rng = random.Random(os.getpid())
    counted = 0
    for _ in range(KILLS):
        acked = run_until_killed(spec, rng)
        counted = check_exact(store, acked)
    meta = store.get("c")
    assert meta.compacted > 0 and store.load_snapshot("c") is not None
    assert store.stats()["events"] < 60  # a snapshot plus a few inputs' events
    final = counted + 25
    out = subprocess.run(
        [sys.executable, str(CHILD), spec, str(final)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "done"
    assert check_exact(store, final) == final


@pytest.mark.slow
def test_compaction_killed_at_random_points_never_loses_state_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "compact.db"
    kill_repeatedly(f"sqlite:{db}", rf.SQLiteStore(db))


@pytest.mark.slow
@pytest.mark.postgres
def test_compaction_killed_at_random_points_never_loses_state_on_postgres(
    pg_store: rf.Store, pg_schema: str
) -> None:
    from conftest import PG_DSN

    kill_repeatedly(f"pg:{PG_DSN}|{pg_schema}", pg_store)
