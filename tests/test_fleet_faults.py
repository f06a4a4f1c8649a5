"""Durable accept, injected store errors, a crash right after a start, a poison instance, and
commands from the CLI while a worker serves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf
from _fleet_flows import STEPS, build_fleet_chain
from test_fleet import CHILD, Fleet, child_env, runs, wait_until
from test_fleet import TESTS as TESTS_DIR


class FlakyStore(rf.SQLiteStore):
    """A real SQLite store whose writes fail on command (errors injected into the store)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fail_appends: list[Exception] = []
        self.fail_creates: list[tuple[Exception, bool]] = []

    def append(self, workflow_id: str, events: Any, **kw: Any) -> int:
        if self.fail_appends:
            raise self.fail_appends.pop(0)
        return super().append(workflow_id, events, **kw)

    def create(self, workflow_id: str, **kw: Any) -> bool:
        if self.fail_creates:
            exc, commit_first = self.fail_creates.pop(0)
            if commit_first:  # the commit went through but its answer was lost
                super().create(workflow_id, **kw)
            raise exc
        return super().create(workflow_id, **kw)


def chain() -> rf.Workflow:
    return (
        rf.workflow(name="chain3")
        .add(rf.step(lambda x: x + 1, name="a"))
        .add(rf.step(lambda x: x * 10, name="b"), to="a")
    )


def test_a_store_error_at_the_start_leaves_nothing_and_a_retry_works(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "f.db")
    with rf.Runner(store=store, workflows=[chain], executor="inline") as runner:
        store.fail_creates.append((rf.StoreError("disk I/O error"), False))
        with pytest.raises(rf.StoreError):
            runner.start_instance("chain3", 1, id="s1")
        assert not store.exists("s1")  # nothing half-done
        runner.start_instance("chain3", 1, id="s1")
        assert runner.wait("s1", timeout=5).status is rf.Status.IDLE
        assert runner.get_results("s1") == [2, 20]


def test_an_unknown_outcome_at_the_start_is_settled_by_an_idempotent_retry(
    tmp_path: Path,
) -> None:
    store = FlakyStore(tmp_path / "f.db")
    with rf.Runner(store=store, workflows=[chain], executor="inline") as runner:
        store.fail_creates.append((rf.StoreUnavailableError("connection lost at commit"), True))
        with pytest.raises(rf.StoreUnavailableError):
            runner.start_instance("chain3", 1, id="s2")
        assert runner.start_instance("chain3", 1, id="s2") == "s2"  # same input: the same one
        with pytest.raises(rf.InstanceStateError, match="different input"):
            runner.start_instance("chain3", 2, id="s2")
    with rf.Runner(store=rf.SQLiteStore(tmp_path / "f.db"), workflows=[chain]) as runner:
        runner.wait("s2", timeout=5)
        assert runner.get_results("s2") == [2, 20]  # fed once, run once
        inputs = [
            e
            for e in runner.store.stream("s2")
            if isinstance(e, rf.events.FactProduced) and e.fact.component == rf.ROOT
        ]
        assert len(inputs) == 1


def test_a_store_error_at_a_later_run_raises_and_loses_nothing_committed(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "f.db")
    with rf.Runner(store=store, workflows=[chain], executor="inline") as runner:
        runner.start_instance("chain3", 1, id="r1")
        runner.wait("r1", timeout=5)
        cursor = store.cursor("r1")
        store.fail_appends.append(rf.StoreError("disk I/O error"))
        with pytest.raises(rf.StoreError):
            runner.run("r1", 5)
        assert store.cursor("r1") == cursor  # the input is not half in the store
        assert runner.get_results("r1") == [2, 20]  # nor half in memory
        runner.run("r1", 5)
        runner.wait("r1", timeout=5)
        assert runner.get_results("r1") == [2, 20, 6, 60]
    rebuilt = rf.Workflow.from_events(
        rf.SQLiteStore(tmp_path / "f.db").stream("r1"), definition=chain
    )
    assert rebuilt.raw_productions() == [2, 20, 6, 60]


def test_a_store_outage_in_the_background_is_waited_out(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "f.db")
    counter = tmp_path / "counter.txt"
    os.environ["RUNEFLOW_COUNTER"], os.environ["FLEET_SLEEP"] = str(counter), "0.2"
    try:
        with rf.Runner(store=store, workflows=[build_fleet_chain]) as runner:
            runner.start_instance("fleet_chain", {"id": "o1", "n": 0}, id="o1")
            wait_until(lambda: ("o1", "s1") in runs(counter), 10, "a first step checkpointed")
            done = {
                e.component
                for e in store.stream("o1")
                if isinstance(e, rf.events.RunnableCompleted)
            }
            store.fail_appends.extend(
                rf.StoreUnavailableError("server restarting") for _ in range(4)
            )
            info = runner.wait("o1", timeout=30)
            assert info.status is rf.Status.IDLE, info
            assert runner.get_results("o1")[-1] == {"id": "o1", "n": STEPS}
    finally:
        del os.environ["RUNEFLOW_COUNTER"], os.environ["FLEET_SLEEP"]
    ran = runs(counter)
    assert all(ran[("o1", step)] == 1 for step in done)  # checkpointed steps never ran again
    assert store.list("running") == []


@pytest.mark.slow
def test_a_crash_right_after_a_start_is_finished_by_a_serving_runner(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    counter = tmp_path / "counter.txt"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "start", f"sqlite:{db}", "c1"],
        env=child_env(counter, sleep=5.0),  # its first step hangs: killed before it is done
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "started"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    store = rf.SQLiteStore(db)
    assert store.get("c1").status == "running"  # the start was durable before it returned
    os.environ["RUNEFLOW_COUNTER"], os.environ["FLEET_SLEEP"] = str(counter), "0"
    try:
        with rf.Runner(store=store, workflows=[build_fleet_chain], poll_interval=0.05) as runner:
            assert runner.start_instance("fleet_chain", {"id": "c1", "n": 0}, id="c1") == "c1"
            with pytest.raises(rf.InstanceStateError, match="different input"):
                runner.start_instance("fleet_chain", {"id": "c1", "n": 1}, id="c1")
            info = runner.wait("c1", timeout=10)
            assert info.status is rf.Status.IDLE
    finally:
        del os.environ["RUNEFLOW_COUNTER"], os.environ["FLEET_SLEEP"]
    rebuilt = rf.Workflow.from_events(store.stream("c1"), definition=build_fleet_chain)
    assert rebuilt.raw_productions()[-1] == {"id": "c1", "n": STEPS}


def test_a_poison_instance_is_reported_and_the_others_recover(tmp_path: Path) -> None:
    db = tmp_path / "p.db"

    def waiting() -> rf.Workflow:
        return (
            rf.workflow(name="waiting")
            .add(rf.step(lambda x: x, name="first"))
            .add(rf.await_event(name="w", events=["go"]), to="first")
            .add(rf.step(lambda s: s.input * 2, name="after"), to="w")
        )

    with rf.Runner(store=rf.SQLiteStore(db), workflows=[waiting], executor="inline") as runner:
        for wid in ("h1", "bad", "h2"):
            runner.start_instance("waiting", 3, id=wid)
    store = rf.SQLiteStore(db)
    for wid in ("h1", "bad", "h2"):
        store.set_status(wid, "running")  # as if the runner had crashed mid-run
    store.corrupt_event("bad", 2)
    with rf.Runner(store=rf.SQLiteStore(db), workflows=[waiting], executor="inline") as runner:
        assert runner.info("h1").status is rf.Status.WAITING  # recovered
        runner.resume("h2", "go")
        assert runner.get_results("h2") == [3, rf.Signal("go", None, "w", 3), 6]
        info = runner.info("bad")
        assert info.loaded is False and "cannot read event" in (info.error or "")
    assert "cannot read event" in (store.get("bad").error or "")
    assert store.get("bad").status == "running"  # left as it is


@pytest.mark.slow
def test_cli_send_and_stop_reach_an_instance_a_worker_holds(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    counter = tmp_path / "counter.txt"
    url = f"sqlite:///{db}"
    env = child_env(counter, sleep=0.4)
    fleet = Fleet(f"sqlite:{db}", counter, sleep=0.4)
    runeflow = [sys.executable, "-m", "runeflow"]
    try:
        _, owner = fleet.serve(lease_ttl=5.0)
        client = rf.Client(rf.SQLiteStore(db))
        client.start_instance("fleet_chain", {"id": "h", "n": 0}, id="h")
        wait_until(lambda: rf.SQLiteStore(db).get("h").owner == owner, 10, "the worker")
        out = subprocess.run(
            [*runeflow, "send", "h", json.dumps({"id": "h", "n": 100}), "--store", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "recorded in the store" in out.stderr
        wait_until(lambda: runs(counter)[("h", "s0")] == 2, 10, "the worker to apply the input")
        out = subprocess.run(
            [*runeflow, "stop", "h", "--store", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "applied there" in out.stderr
        wait_until(lambda: rf.SQLiteStore(db).get("h").status == "stopped", 10, "the stop")
    finally:
        fleet.close()
    rebuilt = rf.Workflow.from_events(rf.SQLiteStore(db).stream("h"), definition=build_fleet_chain)
    assert {"id": "h", "n": 0} in [f.value for f in rebuilt.facts().values()]


def test_a_killed_but_unreaped_owner_counts_as_dead() -> None:
    import socket

    from runeflow.runner.ownership import owner_is_dead

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        host = socket.gethostname()
        assert not owner_is_dead(f"{host}:{proc.pid}:x")  # alive
        os.kill(proc.pid, signal.SIGKILL)
        wait_until(lambda: owner_is_dead(f"{host}:{proc.pid}:x"), 5, "the zombie to be seen")
        assert not owner_is_dead(f"other-host:{proc.pid}:x")  # another host: only its lease says
    finally:
        proc.wait()


def test_a_client_drives_an_instance_a_serving_runner_runs(tmp_path: Path) -> None:
    db = tmp_path / "client.db"

    def approval() -> rf.Workflow:
        return (
            rf.workflow(name="approval", outputs={"result": "after"})
            .add(rf.step(lambda x: x, name="first"))
            .add(rf.await_event(name="w", events=["go"]), to="first")
            .add(rf.step(lambda s: s.input * 2, name="after"), to="w")
        )

    with rf.Runner(store=rf.SQLiteStore(db), workflows=[approval], poll_interval=0.02):
        client = rf.Client(f"sqlite:///{db}")
        client.start_instance("approval", 21, id="a1")
        assert client.wait("a1", timeout=10).status is rf.Status.WAITING
        with pytest.raises(rf.InstanceStateError, match="no open wait accepts"):
            client.resume("a1", "nope")
        client.resume("a1", "go")
        assert client.wait("a1", timeout=10).status is rf.Status.IDLE
        assert client.get_results("a1", components=None) == {"result": 42}
        assert client.get_results("a1")[-1] == 42
        client.run("a1", 5)  # more input, applied by the runner
        info = client.wait("a1", timeout=10)
        assert info.status is rf.Status.WAITING and len(info.open_waits) == 1
        client.stop("a1")
        wait_until(lambda: client.info("a1").status is rf.Status.STOPPED, 10, "the stop")
        with pytest.raises(rf.InstanceStateError, match="stopped"):
            client.run("a1", 6)
        assert client.list_workflows("stopped") == ["a1"]
        client.close()


class CommandRacingStore(rf.SQLiteStore):
    """A real SQLite store whose first read once armed (the instance's row or its timers)
    returns only after the runner has applied the command sent to it: a wait's reads
    straddle the command, the moment it could be misled."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.armed = False

    def _straddle(self, workflow_id: str) -> None:
        if self.armed:
            self.armed = False
            wait_until(lambda: not self.timers(workflow_id), 10, "the command to be applied")

    def get(self, workflow_id: str) -> Any:
        meta = super().get(workflow_id)
        self._straddle(workflow_id)
        return meta

    def timers(self, workflow_id: str) -> Any:
        timers = super().timers(workflow_id)
        self._straddle(workflow_id)
        return timers


def test_a_wait_is_not_misled_by_a_command_applied_while_it_reads(tmp_path: Path) -> None:
    import threading

    from runeflow.cli.inspecting import wait_for

    db = tmp_path / "race.db"
    release = threading.Event()

    def approval() -> rf.Workflow:
        return (
            rf.workflow(name="approval")
            .add(rf.await_event(name="w", events=["go"]))
            .add(rf.step(lambda s: release.wait(10) and s.payload * 2, name="after"), to="w")
        )

    store = CommandRacingStore(db)
    with rf.Runner(store=rf.SQLiteStore(db), workflows=[approval], poll_interval=0.02):
        client = rf.Client(store)
        for n, wait in enumerate(
            [
                lambda: client.wait("i0", timeout=20),
                lambda: wait_for(store, "i1", {rf.Status.WAITING, rf.Status.IDLE}, None, None),
            ]
        ):
            wid = f"i{n}"
            client.start_instance("approval", n, id=wid)
            assert client.wait(wid, timeout=10).status is rf.Status.WAITING
            client.resume(wid, "go", 21)
            store.armed = True  # the wait's first read is from before "go" is applied
            timer = threading.Timer(0.5, release.set)  # "after" runs until then
            timer.start()
            info = wait()
            timer.join()
            release.clear()
            assert info.status is rf.Status.IDLE, info  # not the running state read meanwhile
            assert client.get_results(wid, components=["after"]) == {"after": 42}
            assert not store.armed  # the race was staged


@pytest.mark.slow
def test_cli_run_submit_records_and_a_worker_runs_it(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    counter = tmp_path / "counter.txt"
    fleet = Fleet(f"sqlite:{db}", counter, sleep=0.0)
    target = f"{TESTS_DIR / '_fleet_flows.py'}:build_fleet_chain"
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "runeflow",
                "run",
                target,
                "--input",
                json.dumps({"id": "sub", "n": 0}),
                "--id",
                "sub",
                "--submit",
                "--store",
                f"sqlite:///{db}",
            ],
            env=child_env(counter),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "sub" and "submitted" in out.stderr
        assert runs(counter) == {}  # nothing ran in the submitting process
        fleet.serve(lease_ttl=5.0)
        info = rf.Client(rf.SQLiteStore(db)).wait("sub", timeout=20)
        assert info.status is rf.Status.IDLE
    finally:
        fleet.close()
    assert sum(runs(counter).values()) == STEPS
