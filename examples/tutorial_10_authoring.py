"""Tutorial 10: authoring. Decorators, filters, meta-conditions, hooks, merge and remove.

Run it: ``python examples/tutorial_10_authoring.py``.
"""

from __future__ import annotations

from typing import Any

import runeflow as rf


@rf.step
def subtotal(order: dict[str, Any]) -> float:
    """A decorated function is a step, and still a function: ``subtotal(order)`` works."""
    return order["qty"] * order["unit"]


@rf.step(name="total", policy=rf.Policy(max_retries=2))
def add_tax(amount: float, rate: float = rf.context("tax_rate", default=0.2)) -> float:
    return round(amount * (1 + rate), 2)


@rf.filter
def large(total: float) -> bool:
    """A filter passes on the values it accepts, unchanged."""
    return total > 100


@rf.accumulator(init=0.0)
def revenue(total: float, so_far: float) -> float:
    return so_far + total


def needs_review(
    total: float,
    limit: float = rf.context("review_limit"),
    so_far: float = rf.state_of("revenue"),
    large_orders: int = rf.fact_count("large"),
) -> bool:
    """A condition may read the run context and, through meta-conditions, the workflow."""
    return total > limit or (so_far > 1000 and large_orders >= 3)


def build() -> rf.Workflow:
    return (
        rf.workflow(name="sales", outputs={"revenue": "revenue"})
        .add(subtotal)
        .add(add_tax, to="subtotal")
        .add(large, to="total")
        .add(revenue, to="total")
        .add(
            rf.rule(condition=needs_review, reaction=lambda t: f"review {t}", name="review"),
            to="total",
        )
    )


workflow = build()


def audit(runnable: rf.Runnable) -> dict[str, Any]:
    """An ``after`` hook sees each result before it is applied; what it returns is logged."""
    return {"audited": runnable.status, "seconds": round(runnable.duration, 6)}


def main() -> None:
    assert subtotal({"qty": 2, "unit": 5}) == 10  # still callable as itself

    wf = workflow.fresh().hook("total", after=audit)
    context = {"review": {"review_limit": 500}}
    for qty in (1, 30, 40, 50, 60):
        wf.react_until_satisfied({"qty": qty, "unit": 10}, run_context=context)
    print("totals:", wf.raw_productions("total"))
    print("large:", wf.raw_productions("large"))
    print("to review:", wf.raw_productions("review"))
    print("revenue:", wf.results())
    first = wf.productions("total")[0]
    print("annotations of the first total:", wf.annotations(first.id))

    shipping = (
        rf.workflow(name="shipping")
        .add(subtotal)
        .add(rf.step(lambda amount: 0 if amount > 50 else 4.9, name="shipping"), to="subtotal")
    )
    merged = build().merge(shipping)  # the shared `subtotal` is kept once
    print("merged:", list(merged.components))
    merged.remove("review", "large")
    print("after remove:", list(merged.components))
    run = merged.react_until_satisfied({"qty": 1, "unit": 20})
    print("results:", run.results(["total", "shipping"]))
    assert run.results(["total", "shipping"]) == {"total": 24.0, "shipping": 4.9}


if __name__ == "__main__":
    main()
