"""Workflows the CLI tests run (``runeflow run tests/_cli_flows.py:ATTR``)."""

from __future__ import annotations

import os
from typing import Any

import runeflow as rf


def check(order: dict[str, Any]) -> dict[str, Any]:
    return order


def ship(signal: rf.Signal) -> str:
    who = (signal.payload or {}).get("by", "nobody")
    return f"shipped {signal.input['id']} (approved by {who})"


def refund(signal: rf.Signal) -> str:
    return f"refunded {signal.input['id']}"


def approved(signal: rf.Signal) -> bool:
    return signal.event == "approved"


def rejected(signal: rf.Signal) -> bool:
    return signal.event == "rejected"


def build_approval() -> rf.Workflow:
    """Check an order, wait for a manager's decision, then ship or refund."""
    return (
        rf.workflow(name="approval", outputs={"outcome": "ship", "refund": "refund"})
        .add(rf.step(check))
        .add(rf.await_event(name="manager", events=["approved", "rejected"]), to="check")
        .add(rf.rule(condition=approved, reaction=ship, name="ship"), to="manager")
        .add(rf.rule(condition=rejected, reaction=refund, name="refund"), to="manager")
    )


approval = build_approval()


def cooled(signal: rf.Signal) -> dict[str, Any]:
    return {"id": signal.input["id"], "cooled_by": signal.event}


def build_cool_off() -> rf.Workflow:
    """Wait $COOL_OFF seconds (a durable timer), then wait for an approval, then ship."""
    seconds = float(os.environ.get("COOL_OFF", "1.0"))
    return (
        rf.workflow(name="cool_off", outputs={"outcome": "ship"})
        .add(rf.step(check))
        .add(rf.await_event(name="cool_off", events=["skip"], timeout=seconds), to="check")
        .add(rf.step(cooled), to="cool_off")
        .add(rf.await_event(name="manager", events=["approved"]), to="cooled")
        .add(rf.step(ship), to="manager")
    )


def boom(order: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError(f"payment service down for order {order['id']}")


def notify(order: dict[str, Any]) -> str:
    return f"notified {order['id']}"


def build_payment() -> rf.Workflow:
    """A step that fails: its downstream is skipped, its sibling runs."""
    return (
        rf.workflow(name="payment")
        .add(rf.step(check))
        .add(rf.step(boom, name="charge"), to="check")
        .add(rf.step(lambda receipt: receipt, name="receipt"), to="charge")
        .add(rf.step(notify), to="check")
    )


def add(value: int, total: int) -> int:
    return total + value


def build_counter() -> rf.Workflow:
    """An accumulator: every input adds to the total."""
    return rf.workflow(name="counter").add(rf.accumulator(add, init=0, name="total"))


def square(x: int) -> int:
    return x * x


def build_every_kind() -> rf.Workflow:
    """One component of each kind, for drawing."""
    return (
        rf.workflow(name='every "kind" <of> #component')
        .add(rf.rule(condition=lambda xs: isinstance(xs, list), reaction=check, name="valid"))
        .add(rf.map(square, name="square"), to="valid")
        .add(rf.reduce(add, 0, map="square", name="sum"), to="square")
        .add(rf.accumulator(add, init=0, name="running_total"), to="sum")
        .add(
            rf.state_machine(init=0, reducer=add, reactors=[], name="machine.state"),
            to="sum",
        )
        .add(rf.await_event(name="confirm", events=["ok"]), to="sum")
        .add(rf.step(lambda total, signal: total, name="join"), to=["sum", "confirm"])
    )


def slow_increment(x: int) -> int:
    import time

    time.sleep(0.4)
    return x + 1


def build_slow() -> rf.Workflow:
    """Six slow steps in a chain (long enough to interrupt)."""
    wf = rf.workflow(name="slow")
    for i in range(6):
        wf.add(rf.step(slow_increment, name=f"s{i}"), to=f"s{i - 1}" if i else None)
    return wf


def steady_increment(x: int) -> int:
    import time

    time.sleep(float(os.environ.get("STEADY_SECONDS", "0.25")))
    return x + 1


def build_steady() -> rf.Workflow:
    """Four steps in a chain, each sleeping $STEADY_SECONDS (0.25): long enough to kill."""
    wf = rf.workflow(name="steady")
    for i in range(4):
        wf.add(rf.step(steady_increment, name=f"s{i}"), to=f"s{i - 1}" if i else None)
    return wf
