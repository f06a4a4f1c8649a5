"""Crash recovery with real crashes: a child process is SIGKILLed mid-workflow, a new
process recovers the instance from the store and finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import runeflow as rf
from _runner_flows import CHAIN_LENGTH, build_counted_chain

TESTS = Path(__file__).resolve().parent
CHILD = TESTS / "_runner_crash_child.py"


def child_env(counter: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["RUNEFLOW_COUNTER"] = str(counter)
    env["RUNEFLOW_STEP_SLEEP"] = "0.08"
    return env


def crash_and_recover(spec: str, store: rf.Store, counter: Path) -> None:
    env = child_env(counter)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "start", spec], env=env, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if counter.exists() and len(counter.read_text().splitlines()) >= 5:
            break
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    log = list(store.stream("crash-1"))
    done_before = {e.component for e in log if isinstance(e, rf.events.RunnableCompleted)}
    assert 3 <= len(done_before) < CHAIN_LENGTH  # killed mid-workflow
    assert store.get("crash-1").status == "running"

    out = subprocess.run(
        [sys.executable, str(CHILD), "recover", spec],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result == {"status": "idle", "results": list(range(1, CHAIN_LENGTH + 1))}

    runs = Counter(counter.read_text().split())
    assert set(runs) == {f"s{i}" for i in range(CHAIN_LENGTH)}  # nothing lost
    for name in done_before:
        assert runs[name] == 1, f"{name} was checkpointed as done but ran {runs[name]} times"
    assert all(n <= 2 for n in runs.values())  # only an in-flight step may run again
    rebuilt = rf.Workflow.from_events(store.stream("crash-1"), definition=build_counted_chain)
    assert rebuilt.raw_productions() == list(range(1, CHAIN_LENGTH + 1))


@pytest.mark.slow
def test_sigkill_mid_workflow_then_recover_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    store = rf.SQLiteStore(db)
    crash_and_recover(f"sqlite:{db}", store, tmp_path / "counter.txt")


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_mid_workflow_then_recover_on_postgres(
    tmp_path: Path, pg_store: rf.Store, pg_schema: str
) -> None:
    from conftest import PG_DSN

    crash_and_recover(f"pg:{PG_DSN}|{pg_schema}", pg_store, tmp_path / "counter.txt")


def test_missing_definition_is_reported_and_left_intact(tmp_path: Path) -> None:
    db = tmp_path / "orphan.db"
    with rf.Runner(store=rf.SQLiteStore(db), executor="inline") as runner:
        wf = rf.workflow(name="orphan").add(rf.await_event(name="w", events=["go"]))
        runner.start_instance(wf, 1, id="o1")
        assert runner.info("o1").status is rf.Status.WAITING
    cursor = rf.SQLiteStore(db).cursor("o1")
    with rf.Runner(store=rf.SQLiteStore(db)) as runner:  # no definition registered
        info = runner.info("o1")
        assert info.loaded is False
        assert info.status is rf.Status.WAITING
        assert "no definition registered for workflow 'orphan'" in (info.error or "")
    assert rf.SQLiteStore(db).cursor("o1") == cursor  # nothing dropped or rewritten


def test_changed_definition_is_reported_and_left_intact(tmp_path: Path) -> None:
    db = tmp_path / "changed.db"

    def build_v1() -> rf.Workflow:
        return (
            rf.workflow(name="versioned")
            .add(rf.await_event(name="w", events=["go"]))
            .add(rf.step(lambda s: "v1", name="after"), to="w")
        )

    def build_v2() -> rf.Workflow:
        return (
            rf.workflow(name="versioned")
            .add(rf.await_event(name="w", events=["go"]))
            .add(rf.step(lambda s: "v2", name="after"), to="w")
        )

    with rf.Runner(store=rf.SQLiteStore(db), workflows=[build_v1]) as runner:
        runner.start_instance("versioned", 1, id="v")
    with rf.Runner(store=rf.SQLiteStore(db), workflows=[build_v2]) as runner:
        info = runner.info("v")
        assert "'after' changed" in (info.error or "")
        with pytest.raises(rf.DefinitionMismatchError):
            runner.recover("v")
        info = runner.recover("v", migrate=True)
        assert info.status is rf.Status.WAITING


def test_an_instance_started_but_never_run_is_picked_up_elsewhere(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    with rf.Runner(store=rf.SQLiteStore(db), workflows=[build_counted_chain]) as first:
        first.start_workflow("later", "counted_chain")
        first.stop("later", persist=False)  # unload without writing anything more
    # the instance and its build events were written at start; no cycle ran
    assert rf.SQLiteStore(db).cursor("later") == 1 + CHAIN_LENGTH
    with rf.Runner(
        store=rf.SQLiteStore(db), workflows=[build_counted_chain], executor="inline"
    ) as second:
        with pytest.raises(rf.InstanceStateError, match="already exists"):
            second.start_workflow("later", "counted_chain")
        os.environ["RUNEFLOW_STEP_SLEEP"] = "0"
        try:
            second.run("later", 100)
            second.wait("later", timeout=10)
        finally:
            del os.environ["RUNEFLOW_STEP_SLEEP"]
        assert second.get_results("later")[-1] == 100 + CHAIN_LENGTH
