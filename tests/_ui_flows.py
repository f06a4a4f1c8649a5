"""Workflows and a populated store for the dashboard's tests (API and browser)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import runeflow as rf
from _cli_flows import build_approval, build_payment

__all__ = [
    "IDS",
    "SCRIPT",
    "build_approval",
    "build_payment",
    "build_pricing",
    "populate",
    "serving",
]

SCRIPT = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
"""Text a page must show as text, never run."""

IDS = {"idle": "order-idle", "failed": "order-failed", "waiting": "order-waiting"}
"""One instance of each of the three statuses the tests look at."""


def price(order: dict[str, Any]) -> float:
    return float(order["qty"]) * float(order["unit"])


def with_tax(amount: float) -> float:
    return round(amount * 1.2, 2)


def build_pricing() -> rf.Workflow:
    """Two steps that always succeed."""
    return (
        rf.workflow(name="pricing", outputs={"total": "with_tax"})
        .add(rf.step(price))
        .add(rf.step(with_tax), to="price")
    )


WORKFLOWS = [build_pricing, build_payment, build_approval]


def populate(path: Path, *, script: bool = False) -> rf.SQLiteStore:
    """A SQLite store holding an idle, a failed and a waiting instance (and, with
    ``script``, a waiting one whose id and input hold :data:`SCRIPT`)."""
    store = rf.SQLiteStore(path)
    with rf.Runner(store=store, workflows=WORKFLOWS, executor="inline") as runner:
        runner.start_instance(build_pricing, {"qty": 3, "unit": 2.5}, id=IDS["idle"])
        runner.start_instance(build_payment, {"id": 7}, id=IDS["failed"])
        runner.start_instance(build_approval, {"id": 8}, id=IDS["waiting"])
        if script:
            runner.start_instance(build_approval, {"id": SCRIPT}, id=SCRIPT)
        for workflow_id in runner.list_workflows():
            runner.wait(workflow_id, timeout=30)
    return store


@contextmanager
def serving(path: Path) -> Iterator[rf.Runner]:
    """A real worker: a runner serving the store at ``path`` in a thread."""
    runner = rf.Runner(
        store=rf.SQLiteStore(path), workflows=WORKFLOWS, poll_interval=0.05, recover=False
    )
    stop = threading.Event()
    thread = threading.Thread(target=runner.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        stop.set()
        thread.join(timeout=10)
        runner.shutdown()
