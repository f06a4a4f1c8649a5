"""Tutorial 1: steps. A workflow is a graph of plain functions; run it inline.

    price ── with_tax ── rounded

Run it: ``python examples/tutorial_01_steps.py``, or through the command line:
``runeflow run examples/tutorial_01_steps.py:workflow --input '{"qty": 3, "unit": 2.5}'``.
"""

from __future__ import annotations

import json
from typing import Any

import runeflow as rf


def price(order: dict[str, Any]) -> float:
    """A step gets its parent's value: here the workflow's input."""
    return order["qty"] * order["unit"]


def with_tax(amount: float, rate: float = rf.context("tax_rate", default=0.2)) -> float:
    """``rf.context`` fills a parameter from the run context (never hashed, never stored)."""
    return amount * (1 + rate)


def build() -> rf.Workflow:
    """Each ``add`` hangs a step under its parent; without ``to=`` it takes the input."""
    return (
        rf.workflow(name="pricing", outputs={"total": "rounded"})
        .add(rf.step(price))
        .add(rf.step(with_tax), to="price")
        .add(rf.step(lambda amount: round(amount, 2), name="rounded"), to="with_tax")
    )


workflow = build()


def main() -> None:
    # One call runs everything inline, on this thread.
    wf = workflow.fresh().react_until_satisfied({"qty": 3, "unit": 2.5})
    print("results:", wf.results())  # the output ports: {'total': 9.0}
    print("every value:", wf.raw_productions())

    # The same run, one phase at a time: prepare hands out self-contained runnables that
    # could execute anywhere; apply folds their results back in.
    wf = workflow.fresh().plan_eagerly(
        {"qty": 10, "unit": 1.0}, run_context={"_global": {"tax_rate": 0.1}}
    )
    while wf.is_runnable():
        for runnable in wf.prepare_for_dispatch():
            print(f"  executing {runnable.component} (runnable {runnable.id[:8]})")
            wf.apply_runnable(rf.execute_runnable(runnable))
        wf.plan_eagerly()
    print("with a 10% tax rate:", json.dumps(wf.results()))


if __name__ == "__main__":
    main()
