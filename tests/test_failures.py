"""Failures a user can see and trust: unstorable values, the failed status, policies on the
definition (surviving a SIGKILL), definitions never imported from store contents, clear
errors for bad arguments, and the runner's log lines."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf

HERE = Path(__file__).parent


class Opaque:
    """A type no codec knows."""


def _sqlite(tmp_path: Path) -> rf.SQLiteStore:
    return rf.SQLiteStore(str(tmp_path / "runs.db"))


# --- a value the store cannot keep is a failure of the step that produced it ---------------


def test_a_step_returning_an_unstorable_value_runs_once_and_fails(tmp_path: Path) -> None:
    calls: list[int] = []

    def make(x: int) -> Opaque:
        calls.append(x)
        return Opaque()

    wf = rf.workflow(
        name="opaque",
        steps=[(rf.step(make, name="make"), [rf.step(lambda o: "never", name="after")])],
    )
    with rf.Runner(_sqlite(tmp_path), executor="inline") as runner:
        runner.start_instance(wf, 1, id="o")
        info = runner.wait("o", timeout=5)
        assert calls == [1]  # never re-executed because of the store
        assert info.status is rf.Status.FAILED
        [failure] = info.failures
        assert failure["component"] == "make"
        assert failure["error_type"] == "runeflow.errors.CodecError"
        assert "'make'" in failure["message"] and "Opaque" in failure["message"]
        assert runner.get_results("o", components=["after"]) == {"after": None}
        # why it failed is on the instance row too, for `runeflow list`
        assert info.error == runner.store.get("o").error
        assert "component 'make' failed: runeflow.errors.CodecError" in (info.error or "")
    # the failure is in the log: a new runner on the same file reports it the same way
    with rf.Runner(_sqlite(tmp_path), workflows=[wf]) as runner:
        again = runner.info("o")
        assert again.status is rf.Status.FAILED
        assert [f["component"] for f in again.failures] == ["make"]
        assert again.error == info.error
    assert calls == [1]


def test_an_unstorable_result_is_retried_and_falls_back_per_policy(tmp_path: Path) -> None:
    calls: list[int] = []

    def make(x: int) -> Any:
        calls.append(x)
        return range(x)  # the JSON codec has no encoding for a range

    wf = rf.workflow(
        name="ranges",
        steps=[
            rf.step(
                make,
                name="make",
                policy=rf.Policy(max_retries=2, backoff="none", fallback=lambda r, err: [err.type]),
            )
        ],
    )
    with rf.Runner(_sqlite(tmp_path), executor="inline") as runner:
        runner.start_instance(wf, 3, id="r")
        info = runner.wait("r", timeout=5)
        assert calls == [3, 3, 3]  # the first attempt and two retries
        assert info.status is rf.Status.IDLE  # the fallback handled it
        assert runner.get_results("r") == [["runeflow.errors.CodecError"]]


def test_an_unstorable_fallback_value_is_a_failure(tmp_path: Path) -> None:
    def boom(x: int) -> int:
        raise ValueError("boom")

    wf = rf.workflow(
        name="bad_fallback",
        steps=[rf.step(boom, name="boom", policy=rf.Policy(fallback=lambda r, e: Opaque()))],
    )
    with rf.Runner(_sqlite(tmp_path), executor="inline") as runner:
        runner.start_instance(wf, 1, id="f")
        info = runner.wait("f", timeout=5)
        assert info.status is rf.Status.FAILED
        assert info.failures[0]["error_type"] == "runeflow.errors.CodecError"


def test_a_generator_result_is_stored_as_a_list(tmp_path: Path) -> None:
    wf = rf.workflow(name="gen", steps=[rf.step(lambda n: (i * i for i in range(n)), name="sq")])
    with rf.Runner(_sqlite(tmp_path), executor="inline") as runner:
        runner.start_instance(wf, 4, id="g")
        assert runner.wait("g", timeout=5).status is rf.Status.IDLE
        assert runner.get_results("g") == [[0, 1, 4, 9]]


def test_unstorable_inputs_and_payloads_are_refused_before_returning(tmp_path: Path) -> None:
    store = _sqlite(tmp_path)
    wait = rf.await_event(name="approval", events=["approved"])
    wf = rf.workflow(name="gated", steps=[(wait, [rf.step(lambda s: s.payload, name="then")])])
    with rf.Runner(store, executor="inline") as runner:
        with pytest.raises(rf.CodecError, match=r"input of new instance 'new'.*Opaque"):
            runner.start_instance(wf, Opaque(), id="new")
        assert not store.exists("new")
        runner.start_instance(wf, 1, id="g")
        assert runner.wait("g", timeout=5).status is rf.Status.WAITING
        cursor = store.cursor("g")
        with pytest.raises(rf.CodecError, match=r"input for instance 'g'.*range"):
            runner.run("g", range(3))
        with pytest.raises(rf.CodecError, match="payload of event 'approved'"):
            runner.resume("g", "approved", payload=Opaque())
        assert store.cursor("g") == cursor  # nothing of them was written
        runner.resume("g", "approved", payload={"by": "ann"})
        assert runner.wait("g", timeout=5).status is rf.Status.IDLE
    client = rf.Client(store)
    with pytest.raises(rf.CodecError, match="input"):
        client.start_instance("gated", Opaque(), id="by-client")
    assert not store.exists("by-client")


@pytest.mark.parametrize("bad", ["", "   ", "a\nb", "x" * 300])
def test_unusable_instance_ids_are_refused(bad: str, tmp_path: Path) -> None:
    wf = rf.workflow(name="one", steps=[rf.step(lambda x: x, name="same")])
    with rf.Runner(executor="inline") as runner:
        with pytest.raises(rf.UsageError, match="instance id"):
            runner.start_instance(wf, 1, id=bad)
        assert runner.list_workflows() == []
    with pytest.raises(rf.UsageError, match="instance id"):
        rf.Client(_sqlite(tmp_path)).start_instance("one", 1, id=bad)


# --- policies travel with the definition ---------------------------------------------------


def _flaky_steps(failures_before_success: int) -> tuple[list[int], Any]:
    calls: list[int] = []

    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) <= failures_before_success:
            raise RuntimeError(f"attempt {len(calls)} failed")
        return x * 10

    return calls, flaky


def test_a_policy_on_the_step_applies_without_runner_policies() -> None:
    calls, flaky = _flaky_steps(2)
    wf = rf.workflow(
        name="p",
        steps=[rf.step(flaky, name="flaky", policy=rf.Policy(max_retries=2, backoff="none"))],
    )
    with rf.Runner(executor="inline") as runner:
        runner.start_instance(wf, 1, id="p")
        assert runner.wait("p", timeout=5).status is rf.Status.IDLE
        assert runner.get_results("p") == [10]
    assert len(calls) == 3


def test_workflow_policies_match_by_pattern_and_the_runner_overrides_what_it_names() -> None:
    calls, flaky = _flaky_steps(1)
    wf = rf.workflow(
        name="p2",
        steps=[rf.step(flaky, name="fetch_a")],
        policies={"fetch_*": rf.Policy(max_retries=1, backoff="none")},
    )
    with rf.Runner(executor="inline") as runner:  # the definition's pattern applies
        runner.start_instance(wf, 1, id="a")
        assert runner.wait("a", timeout=5).status is rf.Status.IDLE
    calls.clear()
    # a runner's entry naming the component wins over the definition
    with rf.Runner(executor="inline", policies={"fetch_a": rf.Policy()}) as runner:
        runner.start_instance(wf, 1, id="b")
        assert runner.wait("b", timeout=5).status is rf.Status.FAILED
    assert len(calls) == 1
    calls.clear()
    # a runner's "*" is only a default: the definition's own policy stays
    with rf.Runner(executor="inline", policies={"*": rf.Policy(on_failure="halt")}) as runner:
        runner.start_instance(wf, 1, id="c")
        assert runner.wait("c", timeout=5).status is rf.Status.IDLE


def test_a_policy_change_is_not_a_definition_change() -> None:
    def build(retries: int) -> rf.Workflow:
        return rf.workflow(
            name="same",
            steps=[rf.step(abs, name="abs", policy=rf.Policy(max_retries=retries))],
        )

    assert build(0).definition_hash() == build(5).definition_hash()


def test_bad_policies_are_refused_when_building() -> None:
    with pytest.raises(rf.WorkflowDefinitionError, match=r"rf\.Policy"):
        rf.step(abs, policy={"max_retries": 3})  # type: ignore[arg-type]
    with pytest.raises(rf.WorkflowDefinitionError, match="max_retries"):
        rf.Policy(max_retries=-1)
    with pytest.raises(rf.WorkflowDefinitionError, match=r"rf\.Policy"):
        rf.workflow(name="x", policies={"a": 3})  # type: ignore[dict-item]


def test_a_policy_on_the_step_survives_sigkill_and_recovery_without_policies(
    tmp_path: Path,
) -> None:
    db, counter = tmp_path / "p.db", tmp_path / "calls.txt"
    child = HERE / "_policy_child.py"
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    proc = subprocess.Popen(
        [sys.executable, str(child), "start", str(db), str(counter)],
        env=env,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not (counter.exists() and counter.read_text()):  # the first call hangs
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "the child never reached the flaky step"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    out = subprocess.run(
        [sys.executable, str(child), "recover", str(db), str(counter)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome = json.loads(out.stdout)
    # killed on call 1, failed on call 2, retried by the step's own policy on call 3
    assert counter.read_text().splitlines() == ["call", "call", "call"]
    assert outcome == {"status": "idle", "results": {"flaky": 20, "after": 21}, "failures": []}


# --- no code is imported because the store names it ----------------------------------------


def _plant_module(tmp_path: Path, name: str) -> Path:
    marker = tmp_path / f"{name}.imported"
    (tmp_path / f"{name}.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('imported')\n"
        "import runeflow as rf\n"
        "def build():\n"
        "    return rf.workflow(name='planted', steps=[rf.step(abs, name='abs')])\n"
    )
    return marker


def test_an_import_path_stored_with_an_instance_is_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "rf_planted_definition"
    marker = _plant_module(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    store = _sqlite(tmp_path)
    store.create(
        "planted-1",
        definition_name="planted",
        definition_hash="",
        status="running",
        metadata={"definition": f"{name}:build"},
    )
    with rf.Runner(store) as runner:  # recovers every unfinished instance it can
        info = runner.info("planted-1")
        assert "no definition registered for workflow 'planted'" in (info.error or "")
        assert f"{name}:build" in (info.error or "")
        with pytest.raises(rf.UntrustedDefinitionError):
            runner.run("planted-1", 1)
    assert name not in sys.modules and not marker.exists()
    meta = store.get("planted-1")
    assert (meta.status, meta.cursor) == ("running", 0)  # left intact...
    assert "not trust" in (meta.error or "")  # ...and reported, for `runeflow list`
    with rf.Runner(store, poll_interval=0.05) as serving:  # a serving runner neither
        time.sleep(0.3)
        assert serving.lookup("planted-1") is None
    assert name not in sys.modules and not marker.exists()


def test_a_module_trusted_explicitly_may_be_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "rf_trusted_definition"
    marker = _plant_module(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    store = _sqlite(tmp_path)
    client = rf.Client(store)
    client.start_instance("planted", -4, id="t1", definition=f"{name}:build")
    with rf.Runner(store, trusted_modules=[name], poll_interval=0.05) as runner:
        deadline = time.monotonic() + 10
        while runner.get_results("t1") != [4]:  # once the submitted input is applied
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert runner.wait("t1", timeout=5).status is rf.Status.IDLE
    assert marker.exists()
    monkeypatch.delitem(sys.modules, name)


# --- clear errors for bad arguments and definitions ----------------------------------------


def test_unknown_executor_names_list_the_accepted_ones() -> None:
    with pytest.raises(rf.UsageError, match=r"unknown executor 'thread'.*asyncio, inline"):
        rf.Runner(executor="thread")
    with pytest.raises(rf.UsageError, match="unknown executor 'gpu'"):
        rf.Runner(policies={"x": rf.Policy(executor="gpu")})
    wf = rf.workflow(name="e", steps=[rf.step(abs, name="a", policy=rf.Policy(executor="gpu"))])
    with rf.Runner(executor="inline") as runner, pytest.raises(rf.UsageError, match="'gpu'"):
        runner.register(wf)
    with pytest.raises(ValueError):  # still a ValueError for code that expects one
        rf.Runner(executor="nope")


def test_output_ports_must_name_components() -> None:
    wf = rf.workflow(name="typo", steps=[rf.step(abs, name="price")], outputs={"x": "prise"})
    with pytest.raises(rf.WorkflowDefinitionError, match=r"'x'.*'prise'.*'price'"):
        wf.react_until_satisfied(-1)
    with rf.Runner(executor="inline") as runner, pytest.raises(rf.WorkflowDefinitionError):
        runner.start_instance(wf, -1, id="t")
    # completed after construction: checked once the graph is complete
    ok = rf.workflow(name="later", outputs={"x": "price"}).add(rf.step(abs, name="price"))
    assert ok.react_until_satisfied(-2).results() == {"x": 2}


# --- what -v shows ---------------------------------------------------------------------------


def test_the_runner_logs_dispatch_completion_retries_checkpoints_and_loading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, flaky = _flaky_steps(1)
    wf = rf.workflow(
        name="logged",
        steps=[rf.step(flaky, name="flaky", policy=rf.Policy(max_retries=1, backoff="none"))],
    )
    caplog.set_level(logging.DEBUG, logger="runeflow")
    with rf.Runner(_sqlite(tmp_path), executor="inline") as runner:
        runner.start_instance(wf, 1, id="l")
        runner.wait("l", timeout=5)
    with rf.Runner(_sqlite(tmp_path), workflows=[wf]) as runner:
        runner.info("l")
        runner.get_results("l")
    text = caplog.text
    for expected in (
        "l: dispatch flaky (attempt 1) to inline",
        "l: flaky failed (attempt 1 of 2), retrying",
        "l: flaky completed",
        "l: checkpoint",
    ):
        assert expected in text, expected
    caplog.clear()
    store = _sqlite(tmp_path)
    store.create("l2", definition_name="logged", definition_hash="", status="running")
    with rf.Runner(store, workflows=[wf]):
        pass
    assert "l2: loaded from the store (running, cursor 0" in caplog.text
