"""Workflows and helpers for the Dask and Ray executor tests (importable by cluster workers
and by the crash child process)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf

TESTS = Path(__file__).resolve().parent
CHAIN = 6
"""Steps of the marked chain used by the crash tests."""


def need(module: str) -> Any:
    """Import ``module`` or skip the test saying why (fail under ``CI=true``)."""
    try:
        return __import__(module)
    except ImportError as exc:
        message = f"{module} is not installed ({exc}): pip install -e '.[dev]'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def square(x: int) -> int:
    return x * x


def add(x: int, acc: int) -> int:
    return acc + x


def pid_of(_: Any) -> int:
    return os.getpid()


def build_squares(executor: Any = None) -> rf.Workflow:
    """A map/reduce (sum of squares) beside a step telling which process ran it."""
    policy = rf.Policy(executor=executor) if executor is not None else None
    return (
        rf.workflow(name="squares", outputs={"total": "total", "pid": "where"})
        .add(rf.map(square, name="square", policy=policy))
        .add(rf.reduce(add, 0, map="square", name="total", policy=policy), to="square")
        .add(rf.step(pid_of, name="where", policy=policy))
    )


def mark(directory: str | Path, name: str) -> None:
    """Leave one marker file per execution of ``name`` (safe from any process)."""
    (Path(directory) / f"{name}.{uuid.uuid4().hex}.run").touch()


def runs(directory: str | Path, name: str) -> int:
    """How many times ``name`` executed."""
    return len(list(Path(directory).glob(f"{name}.*.run")))


def mark_and_pass(directory: str | Path, name: str):  # type: ignore[no-untyped-def]
    """A step that leaves a marker per execution and passes its input on."""

    def passing(x: Any) -> Any:
        mark(directory, name)
        return x

    return passing


def make_link(i: int, directory: str):  # type: ignore[no-untyped-def]
    def link(x: int) -> int:
        mark(directory, f"s{i}")
        time.sleep(0.4)
        return x + 1

    link.__name__ = f"link_{i}"
    return link


def build_marked_chain() -> rf.Workflow:
    """A chain whose steps leave a marker per execution in ``$RF_MARKERS``."""
    directory = os.environ["RF_MARKERS"]
    wf = rf.workflow(name="marked_chain")
    prev = None
    for i in range(CHAIN):
        wf.add(rf.step(make_link(i, directory), name=f"s{i}"), to=prev)
        prev = f"s{i}"
    return wf


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` (a test helper: the code under test never polls)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def make_flaky(directory: str | Path, failures: int):  # type: ignore[no-untyped-def]
    """A step that raises on its first ``failures`` executions, marking each one."""

    def flaky(x: int) -> int:
        mark(directory, "flaky")
        if runs(directory, "flaky") <= failures:
            raise RuntimeError("not yet")
        return x + 1

    return flaky


def make_victim(directory: str | Path):  # type: ignore[no-untyped-def]
    """A step whose first attempt writes its pid and waits to be killed."""

    def victim(x: Any) -> int:
        mark(directory, "victim")
        pid_file = Path(directory) / "victim.pid"
        if not pid_file.exists():
            pid_file.write_text(str(os.getpid()))
            time.sleep(60)  # SIGKILLed here by the test
        return len(x) if isinstance(x, bytes) else int(x) * 10

    return victim


def make_sleeper(directory: str | Path):  # type: ignore[no-untyped-def]
    """A step that runs until ``stop`` appears (10 s at most), noting how it ended."""

    def sleeper(x: int) -> int:
        stop = Path(directory) / "stop"
        try:
            deadline = time.monotonic() + 10
            while not stop.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        except BaseException:  # Ray's cancellation interrupts the task
            (Path(directory) / "interrupted").touch()
            raise
        (Path(directory) / "finished").touch()
        return x

    return sleeper
