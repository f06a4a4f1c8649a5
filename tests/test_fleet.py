"""Many runners, one store: real processes paused, killed, a Postgres restart, injected store
errors. Each test asserts what a user relies on: every instance finishes, every log replays,
nothing committed is lost, no step checkpointed as done runs again, nothing is stranded."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf
from _fleet_flows import STEPS, build_fleet_chain

TESTS = Path(__file__).resolve().parent
CHILD = TESTS / "_fleet_flows.py"
DONE = {"n": STEPS}


def child_env(counter: Path, sleep: float = 0.05) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["RUNEFLOW_COUNTER"] = str(counter)
    env["FLEET_SLEEP"] = str(sleep)
    return env


class Fleet:
    """Serving child processes on one store."""

    def __init__(self, spec: str, counter: Path, sleep: float = 0.05) -> None:
        self.spec, self.env = spec, child_env(counter, sleep)
        self.procs: list[subprocess.Popen[str]] = []

    def serve(self, lease_ttl: float) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), "serve", self.spec, str(lease_ttl)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("serving "), proc.stderr.read() if proc.stderr else line
        return proc, line.removeprefix("serving ")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def fleet_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, rf.Store]]:
    """``(spec, store)`` for the child processes and the test, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        db = tmp_path / "fleet.db"
        store = rf.SQLiteStore(db)
        yield f"sqlite:{db}", store
        store.close()
        return
    from conftest import PG_DSN

    pg_store = request.getfixturevalue("pg_store")
    schema = request.getfixturevalue("pg_schema")
    yield f"pg:{PG_DSN}|{schema}", pg_store


STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.02)
    return time.monotonic() - start


def submit(store: rf.Store, n: int, prefix: str) -> list[str]:
    client = rf.Client(store)
    return [
        client.start_instance("fleet_chain", {"id": f"{prefix}{i}", "n": 0}, id=f"{prefix}{i}")
        for i in range(n)
    ]


def completed(store: rf.Store, wid: str) -> Counter[str]:
    return Counter(
        e.component for e in store.stream(wid) if isinstance(e, rf.events.RunnableCompleted)
    )


def runs(counter: Path) -> Counter[tuple[str, str]]:
    lines = counter.read_text().split("\n") if counter.exists() else []
    return Counter((w, s) for w, s, _ in (line.split() for line in lines if line))


def check_finished(
    store: rf.Store, ids: list[str], counter: Path, done_before: dict[str, set[str]]
) -> None:
    """Every instance idle with the right result, its log replays, each step applied once,
    and no step checkpointed as done before the fault ran again."""
    ran = runs(counter)
    for wid in ids:
        meta = store.get(wid)
        assert meta.status == "idle", (wid, meta)
        rebuilt = rf.Workflow.from_events(store.stream(wid), definition=build_fleet_chain)
        assert rebuilt.raw_productions()[-1] == {"id": wid, **DONE}
        assert completed(store, wid) == Counter({f"s{i}": 1 for i in range(STEPS)}), wid
        for step in done_before.get(wid, ()):
            assert ran[(wid, step)] == 1, f"{wid} {step} was checkpointed, then ran again"
        assert all(ran[(wid, f"s{i}")] >= 1 for i in range(STEPS))


def snapshot_done(store: rf.Store, ids: list[str]) -> dict[str, set[str]]:
    return {wid: set(completed(store, wid)) for wid in ids}


@pytest.mark.slow
@pytest.mark.parametrize("fleet_store", STORES, indirect=True)
def test_a_runner_paused_past_its_lease_is_fenced_off(fleet_store: Any, tmp_path: Path) -> None:
    spec, store = fleet_store
    counter = tmp_path / "counter.txt"
    fleet = Fleet(spec, counter, sleep=0.15)
    try:
        paused, paused_owner = fleet.serve(lease_ttl=1.0)
        ids = submit(store, 8, "p")
        wait_until(lambda: sum(runs(counter).values()) >= 6, 20, "the first runner to work")
        os.kill(paused.pid, signal.SIGSTOP)
        done_before = snapshot_done(store, ids)
        fleet.serve(lease_ttl=1.0)  # takes the instances over once the leases expire
        client = rf.Client(store)
        try:
            for wid in ids:
                client.wait(wid, timeout=30)
        finally:
            cursors = {wid: store.cursor(wid) for wid in ids}
            os.kill(paused.pid, signal.SIGCONT)
        time.sleep(2.0)  # the paused runner wakes up, finishes its steps, tries to write
        assert {wid: store.cursor(wid) for wid in ids} == cursors  # it wrote nothing
        assert paused.poll() is None  # it did not crash either: it stopped those instances
        assert all(store.get(wid).epoch >= 2 for wid in ids if done_before[wid])
        check_finished(store, ids, counter, done_before)
    finally:
        fleet.close()
    assert paused_owner not in {store.get(w).owner for w in ids}


@pytest.mark.slow
@pytest.mark.parametrize("fleet_store", STORES, indirect=True)
def test_a_killed_runner_s_instances_finish_elsewhere(fleet_store: Any, tmp_path: Path) -> None:
    spec, store = fleet_store
    counter = tmp_path / "counter.txt"
    lease_ttl = 3.0
    fleet = Fleet(spec, counter, sleep=0.1)
    try:
        victim, victim_owner = fleet.serve(lease_ttl)
        ids = submit(store, 10, "k")
        wait_until(lambda: any(store.get(w).owner == victim_owner for w in ids), 20, "a claim")
        fleet.serve(lease_ttl)
        fleet.serve(lease_ttl)
        wait_until(lambda: sum(runs(counter).values()) >= 8, 20, "progress")
        held = [w for w in ids if store.get(w).owner == victim_owner]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        done_before = snapshot_done(store, ids)
        cursors = {w: store.cursor(w) for w in held}

        def taken_over() -> bool:
            return all(
                store.get(w).status == "idle"
                or (store.get(w).owner not in (None, victim_owner) and store.cursor(w) > cursors[w])
                for w in held
            )

        elapsed = wait_until(taken_over, 30, "the instances of the killed runner to move")
        assert elapsed <= lease_ttl + 1.0  # same host: a dead process is taken over at once
        client = rf.Client(store)
        for wid in ids:
            client.wait(wid, timeout=30)
        check_finished(store, ids, counter, done_before)
    finally:
        fleet.close()


def _pg_restart() -> None:
    tool = shutil.which("pg_ctlcluster")
    if tool is None or not Path("/etc/postgresql").is_dir():
        message = "pg_ctlcluster is not installed: cannot restart the PostgreSQL server"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(
        [tool, "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _retrying(call: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except rf.StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("fleet_store", ["postgres"], indirect=True)
def test_postgres_restarted_under_load(fleet_store: Any, tmp_path: Path) -> None:
    spec, store = fleet_store
    counter = tmp_path / "counter.txt"
    fleet = Fleet(spec, counter, sleep=0.05)
    try:
        fleet.serve(lease_ttl=5.0)
        fleet.serve(lease_ttl=5.0)
        ids = submit(store, 40, "r")
        wait_until(lambda: sum(runs(counter).values()) >= 30, 30, "load")
        done_before = snapshot_done(store, ids)
        _pg_restart()
        client = _retrying(lambda: rf.Client(store))
        for wid in ids:
            _retrying(lambda wid=wid: client.wait(wid, timeout=60))
        _retrying(lambda: check_finished(store, ids, counter, done_before))
        stranded = [m.workflow_id for m in store.list("running")]
        assert stranded == []
    finally:
        fleet.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("fleet_store", ["postgres"], indirect=True)
def test_a_client_submits_1000_instances_to_three_workers(fleet_store: Any, tmp_path: Path) -> None:
    spec, store = fleet_store
    counter = tmp_path / "counter.txt"
    fleet = Fleet(spec, counter, sleep=0.0)
    try:
        for _ in range(3):
            fleet.serve(lease_ttl=10.0)
        ids = submit(store, 1000, "m")
        client = rf.Client(store)
        for wid in ids:
            client.wait(wid, timeout=120)
    finally:
        fleet.close()
    by_pid = Counter(line.split()[2] for line in counter.read_text().splitlines())
    assert len(by_pid) == 3 and min(by_pid.values()) > 0  # the work was shared
    ran = runs(counter)
    assert set(ran.values()) == {1} and len(ran) == 1000 * STEPS  # each step ran once
    for wid in ids[::50]:
        assert completed(store, wid) == Counter({f"s{i}": 1 for i in range(STEPS)})
    assert [m.workflow_id for m in store.list("running")] == []
