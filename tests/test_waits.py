"""External events and durable timers through the runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import runeflow as rf
from _runner_flows import build_approval

TESTS = Path(__file__).resolve().parent
CHILD = TESTS / "_waits_child.py"


def runner_with(clock: rf.FakeClock | None = None, **kw: object) -> rf.Runner:
    return rf.Runner(workflows=[build_approval], clock=clock, **kw)  # type: ignore[arg-type]


def outcome(runner: rf.Runner, wid: str) -> dict[str, object]:
    return runner.get_results(wid, components=["ship", "refund", "expire"])


def test_approval_flow_waits_then_ships() -> None:
    clock = rf.FakeClock()
    with runner_with(clock) as runner:
        runner.start_instance("approval", {"id": 1}, id="a1")
        info = runner.wait("a1", timeout=5)
        assert info.status is rf.Status.WAITING
        assert info.waiting_since == clock.now()
        assert [w["step"] for w in info.open_waits] == ["manager"]
        assert info.open_waits[0]["events"] == ["approved", "rejected"]
        runner.resume("a1", "approved")
        info = runner.wait("a1", timeout=5)
        assert info.status is rf.Status.IDLE
        assert info.waiting_since is None
        assert outcome(runner, "a1") == {"ship": "shipped 1", "refund": None, "expire": None}
        signal_fact = runner.get_results("a1", components=["manager"])["manager"]
        assert signal_fact == rf.Signal("approved", None, "manager", {"id": 1})


def test_rejected_takes_the_other_branch_with_its_payload() -> None:
    with runner_with() as runner:
        runner.start_instance("approval", {"id": 2}, id="a2")
        runner.wait("a2", timeout=5)
        runner.resume("a2", "rejected", payload="over budget", step="manager")
        runner.wait("a2", timeout=5)
        assert outcome(runner, "a2") == {
            "ship": None,
            "refund": "refunded 2 (over budget)",
            "expire": None,
        }


def test_delivery_is_in_the_store_before_resume_returns(tmp_path: Path) -> None:
    store = rf.SQLiteStore(tmp_path / "d.db")
    gate = threading.Event()

    def slow_ship(signal: rf.Signal) -> str:
        gate.wait(5)
        return "shipped"

    wf = (
        rf.workflow(name="durable")
        .add(rf.await_event(name="manager", events=["approved"]))
        .add(rf.step(slow_ship), to="manager")
    )
    with rf.Runner(store=store) as runner:
        runner.start_instance(wf, 1, id="d")
        runner.wait("d", timeout=5)
        runner.resume("d", "approved", payload={"by": "ann"})
        kinds = [e.kind for e in rf.SQLiteStore(tmp_path / "d.db").stream("d")]
        assert "event_received" in kinds  # while the next step still runs
        gate.set()
        runner.wait("d", timeout=5)


@pytest.mark.parametrize("order", [("legal", "finance"), ("finance", "legal")])
def test_two_parallel_waits_resume_in_either_order(order: tuple[str, str]) -> None:
    wf = (
        rf.workflow(name="two_waits")
        .add(rf.await_event(name="legal", events=["ok"]))
        .add(rf.await_event(name="finance", events=["ok"]))
        .add(rf.step(lambda a, b: f"{a.step}+{b.step}", name="signed"), to=["legal", "finance"])
    )
    with rf.Runner() as runner:
        runner.start_instance(wf, "contract", id="c")
        info = runner.wait("c", timeout=5)
        assert sorted(w["step"] for w in info.open_waits) == ["finance", "legal"]
        runner.resume("c", "ok", step=order[0])
        info = runner.wait("c", timeout=5)
        assert info.status is rf.Status.WAITING
        assert [w["step"] for w in info.open_waits] == [order[1]]
        runner.resume("c", "ok", step=order[1])
        info = runner.wait("c", timeout=5)
        assert info.status is rf.Status.IDLE
        assert runner.get_results("c", components=["signed"]) == {"signed": "legal+finance"}


def test_timeout_path_with_a_fake_clock() -> None:
    clock = rf.FakeClock()
    with rf.Runner(clock=clock, workflows=[lambda: build_approval(timeout=3600)]) as runner:
        runner.start_instance("approval", {"id": 3}, id="t")
        info = runner.wait("t", timeout=5)
        [timer] = info.pending_timers
        assert timer["fire_at"] == clock.now() + 3600
        assert timer["event"] == "timeout"
        assert len(runner.store.timers("t")) == 1  # durable
        clock.advance(3599)
        assert runner.info("t").status is rf.Status.WAITING
        clock.advance(1)
        info = runner.wait("t", timeout=5)
        assert info.status is rf.Status.IDLE
        assert outcome(runner, "t") == {"ship": None, "refund": None, "expire": "expired 3"}
        assert runner.store.timers("t") == []
        assert runner.timer_lateness() == [0.0]


def test_an_event_before_the_timeout_cancels_the_timer() -> None:
    clock = rf.FakeClock()
    with rf.Runner(clock=clock, workflows=[lambda: build_approval(timeout=60)]) as runner:
        runner.start_instance("approval", {"id": 4}, id="e")
        runner.wait("e", timeout=5)
        runner.resume("e", "approved")
        runner.wait("e", timeout=5)
        clock.advance(120)
        assert outcome(runner, "e") == {"ship": "shipped 4", "refund": None, "expire": None}
        kinds = [e.kind for e in runner.get_workflow("e").event_log()]
        assert "timer_cancelled" in kinds
        assert "timer_fired" not in kinds
        assert runner.store.timers("e") == []


def test_event_and_timer_racing_give_one_outcome() -> None:
    for i in range(25):
        clock = rf.FakeClock()
        with rf.Runner(clock=clock, workflows=[lambda: build_approval(timeout=10)]) as runner:
            wid = f"race{i}"
            runner.start_instance("approval", {"id": i}, id=wid)
            runner.wait(wid, timeout=5)
            errors: list[Exception] = []

            def send(wid: str = wid, errors: list[Exception] = errors) -> None:
                try:
                    runner.resume(wid, "approved")
                except rf.InstanceStateError as exc:
                    errors.append(exc)

            t1 = threading.Thread(target=send)
            t2 = threading.Thread(target=clock.advance, args=(10,))
            t1.start()
            t2.start()
            t1.join()
            t2.join()
            runner.wait(wid, timeout=5)
            log = runner.get_workflow(wid).event_log()
            received = [e for e in log if isinstance(e, rf.events.EventReceived)]
            assert len(received) == 1
            results = outcome(runner, wid)
            if received[0].event == "approved":
                assert results["ship"] and not results["expire"] and not errors
            else:
                assert results["expire"] and not results["ship"]
                assert len(errors) == 1 and "no open wait" in str(errors[0])


def test_schedule_resume_and_cancel() -> None:
    clock = rf.FakeClock()
    with runner_with(clock) as runner:
        runner.start_instance("approval", {"id": 5}, id="s")
        runner.wait("s", timeout=5)
        first = runner.schedule_resume("s", "manager", delay=30)
        second = runner.schedule_resume("s", "manager", delay=60)
        assert runner.cancel_timer("s", first) is True
        assert runner.cancel_timer("s", first) is False
        assert [t["timer_id"] for t in runner.info("s").pending_timers] == [second]
        clock.advance(45)
        assert runner.info("s").status is rf.Status.WAITING
        clock.advance(15)
        runner.wait("s", timeout=5)
        assert outcome(runner, "s")["expire"] == "expired 5"
        with pytest.raises(rf.InstanceStateError, match="no await_event step 'check'"):
            runner.schedule_resume("s", "check", delay=1)


def test_errors_for_unknown_finished_stopped_and_undeclared() -> None:
    with runner_with() as runner:
        with pytest.raises(rf.WorkflowNotFoundError, match="'ghost'"):
            runner.resume("ghost", "approved")
        runner.start_instance("approval", {"id": 6}, id="x")
        runner.wait("x", timeout=5)
        cursor = runner.store.cursor("x")
        with pytest.raises(
            rf.InstanceStateError, match=r"'x'.*'shipped' is not accepted.*approved"
        ):
            runner.resume("x", "shipped")
        with pytest.raises(rf.InstanceStateError, match="no open wait on step 'check'"):
            runner.resume("x", "approved", step="check")
        with pytest.raises(rf.CodecError):
            runner.resume("x", "approved", payload=object())
        assert runner.store.cursor("x") == cursor  # nothing changed
        assert runner.info("x").status is rf.Status.WAITING
        runner.resume("x", "approved")
        runner.wait("x", timeout=5)
        with pytest.raises(rf.InstanceStateError, match=r"'x' .*no open wait"):
            runner.resume("x", "approved")  # finished
        runner.start_instance("approval", {"id": 7}, id="y")
        runner.wait("y", timeout=5)
        runner.stop("y")
        with pytest.raises(rf.InstanceStateError, match="'y' is stopped"):
            runner.resume("y", "approved")


def test_info_counts() -> None:
    with runner_with() as runner:
        runner.start_instance("approval", {"id": 8}, id="i")
        info = runner.wait("i", timeout=5)
        assert (info.step_count, info.in_flight) == (1, 0)  # parking is not a step
        assert info.advance_count >= 1
        runner.resume("i", "approved")
        info = runner.wait("i", timeout=5)
        assert info.step_count == 3  # check, the resumed wait, ship (the other rules rejected)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["RUNEFLOW_WAIT_TIMEOUT"] = "1.5"
    return env


def timer_survives_sigkill(spec: str) -> None:
    env = child_env()
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "arm", spec],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    armed = json.loads(line)
    assert armed["status"] == "waiting"
    out = subprocess.run(
        [sys.executable, str(CHILD), "fire", spec],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    fired = json.loads(out.stdout)
    assert fired["results"] == {"expire": "expired 7"}
    assert fired["fired_at"] >= armed["fire_at"]  # not early
    [lateness] = fired["lateness"]  # fired once, by the new process
    assert lateness < 1.0


@pytest.mark.slow
def test_timer_survives_sigkill_on_sqlite(tmp_path: Path) -> None:
    timer_survives_sigkill(f"sqlite:{tmp_path / 'timers.db'}")


@pytest.mark.slow
@pytest.mark.postgres
def test_timer_survives_sigkill_on_postgres(pg_store: rf.Store, pg_schema: str) -> None:
    from conftest import PG_DSN

    timer_survives_sigkill(f"pg:{PG_DSN}|{pg_schema}")


@pytest.mark.slow
def test_resume_reaches_an_instance_run_by_another_process(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    spec = f"sqlite:{db}"
    with rf.Runner(store=rf.SQLiteStore(db), workflows=[build_approval]) as runner:
        runner.start_instance("approval", {"id": 9}, id="remote")
        runner.wait("remote", timeout=5)
    server = subprocess.Popen(
        [sys.executable, str(CHILD), "serve", spec],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "serving"
        client = rf.Runner(store=rf.SQLiteStore(db), workflows=[build_approval], recover=False)
        with pytest.raises(rf.InstanceStateError, match="not accepted"):
            client.resume("remote", "maybe")  # validated here, nothing recorded
        client.resume("remote", "approved")  # the server holds it: recorded in the store
        deadline = time.monotonic() + 10
        store = rf.SQLiteStore(db)
        while store.get("remote").status != "idle":
            assert time.monotonic() < deadline, "the serving process never applied it"
            time.sleep(0.05)
        client.shutdown()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    assert server.returncode == 0
    log = list(rf.SQLiteStore(db).stream("remote"))
    assert [e.event for e in log if isinstance(e, rf.events.EventReceived)] == ["approved"]
    rebuilt = rf.Workflow.from_events(log, definition=build_approval)
    assert rebuilt.results(["ship"]) == {"ship": "shipped 9"}
