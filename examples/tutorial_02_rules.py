"""Tutorial 2: rules. A rule's reaction runs only on inputs its condition accepts.

    ┌─ large_order ── manual_review
    ├─ small_order ── auto_approve
    └─ express ─────── (flag for the courier)

Run it: ``python examples/tutorial_02_rules.py``.
"""

from __future__ import annotations

from typing import Any

import runeflow as rf


def is_large(order: dict[str, Any]) -> bool:
    return order["total"] >= 1000


def is_small(order: dict[str, Any]) -> bool:
    return order["total"] < 1000


def is_express(order: dict[str, Any]) -> bool:
    # A condition that raises KeyError (the input has another shape) is simply a non-match.
    return order["shipping"] == "express"


def build() -> rf.Workflow:
    """Rules are components like steps: they take parents and children."""
    return (
        rf.workflow(
            name="order_routing",
            rules=[
                rf.rule(condition=is_large, reaction=lambda o: o, name="large_order"),
                rf.rule(condition=is_small, reaction=lambda o: o, name="small_order"),
                rf.rule(condition=is_express, reaction=lambda o: o["id"], name="express"),
            ],
        )
        .add(
            rf.step(lambda o: f"order {o['id']}: manual review", name="manual_review"),
            to="large_order",
        )
        .add(rf.step(lambda o: f"order {o['id']}: approved", name="auto_approve"), to="small_order")
    )


workflow = build()


def main() -> None:
    orders = [
        {"id": 1, "total": 250, "shipping": "express"},
        {"id": 2, "total": 4200, "shipping": "standard"},
        {"id": 3, "total": 80},  # no shipping key: `express` does not match, nothing fails
    ]
    for order in orders:
        wf = workflow.fresh().react_until_satisfied(order)
        print(f"order {order['id']}:", wf.results(all=True))
        rejected = [e.component for e in wf.event_log() if e.kind == "condition_rejected"]
        print(f"  conditions that did not match: {rejected}")


if __name__ == "__main__":
    main()
