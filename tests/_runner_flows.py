"""Workflows used by the runner tests (importable, so processes and crash tests can use them)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import runeflow as rf

CHAIN_LENGTH = 12


def record(name: str) -> None:
    """Append ``name`` to the counter file named by $RUNEFLOW_COUNTER (one line per run)."""
    path = os.environ.get("RUNEFLOW_COUNTER")
    if path:
        with Path(path).open("a") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())


def make_link(i: int):  # type: ignore[no-untyped-def]
    def link(x: int) -> int:
        record(f"s{i}")
        time.sleep(float(os.environ.get("RUNEFLOW_STEP_SLEEP", "0.05")))
        return x + 1

    link.__name__ = f"link_{i}"
    return link


def build_counted_chain() -> rf.Workflow:
    """A chain of steps that each record their run in a counter file."""
    wf = rf.workflow(name="counted_chain")
    prev = None
    for i in range(CHAIN_LENGTH):
        wf.add(rf.step(make_link(i), name=f"s{i}"), to=prev)
        prev = f"s{i}"
    return wf


def square(x: int) -> int:
    """Module-level, so runnables using it can be pickled to worker processes."""
    return x * x


def add(x: int, acc: int) -> int:
    return acc + x


def pid_of(x: int) -> int:
    return os.getpid()


def build_squares() -> rf.Workflow:
    return (
        rf.workflow(name="squares")
        .add(rf.map(square, name="square"))
        .add(rf.reduce(add, 0, map="square", name="total"))
    )


def ship(signal: rf.Signal) -> str:
    return f"shipped {signal.input['id']}"


def refund(signal: rf.Signal) -> str:
    return f"refunded {signal.input['id']} ({signal.payload})"


def expire(signal: rf.Signal) -> str:
    return f"expired {signal.input['id']}"


def is_event(name: str):  # type: ignore[no-untyped-def]
    return lambda s: s.event == name


def build_approval(timeout: float | None = None) -> rf.Workflow:
    """Check an order, wait for a manager's decision (or a timeout), then act on it."""
    return (
        rf.workflow(name="approval")
        .add(rf.step(lambda order: order, name="check"))
        .add(
            rf.await_event(name="manager", events=["approved", "rejected"], timeout=timeout),
            to="check",
        )
        .add(rf.rule(condition=is_event("approved"), reaction=ship, name="ship"), to="manager")
        .add(rf.rule(condition=is_event("rejected"), reaction=refund, name="refund"), to="manager")
        .add(rf.rule(condition=is_event("timeout"), reaction=expire, name="expire"), to="manager")
    )


def build_approval_with_timeout() -> rf.Workflow:
    """The approval flow with a timeout of $RUNEFLOW_WAIT_TIMEOUT seconds (default 1.5)."""
    return build_approval(timeout=float(os.environ.get("RUNEFLOW_WAIT_TIMEOUT", "1.5")))
