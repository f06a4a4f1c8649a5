"""Order fulfilment: validate an order, run three checks in parallel, then decide.

    validate_order ─┬─ check_inventory ───┐
                    ├─ screen_fraud ──────┼─ decide_fulfillment
                    └─ estimate_shipping ─┘

Run it directly (``python examples/order_fulfillment.py``) to execute it inline and print
the decision. The three checks sleep to stand in for calls to other services.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import runeflow as rf

ORDER = {"customer_id": "cust-456", "items": ["widget-a", "widget-b"]}


def is_valid_order(order: dict[str, Any]) -> bool:
    """A valid order has a list of items and a customer id."""
    return isinstance(order["items"], list) and isinstance(order["customer_id"], str)


def check_inventory(order: dict[str, Any]) -> dict[str, Any]:
    """Ask the warehouse whether the items are in stock."""
    time.sleep(0.2)
    return {"order_id": order["customer_id"], "inventory": "in_stock"}


def screen_fraud(order: dict[str, Any]) -> dict[str, Any]:
    """Score the order's fraud risk."""
    time.sleep(0.3)
    return {"order_id": order["customer_id"], "risk": "low"}


def estimate_shipping(order: dict[str, Any]) -> dict[str, Any]:
    """Estimate delivery time and cost."""
    time.sleep(0.15)
    return {"order_id": order["customer_id"], "days": 3, "cost": 5.99}


def decide_fulfillment(
    inventory: dict[str, Any], fraud: dict[str, Any], shipping: dict[str, Any]
) -> dict[str, Any]:
    """Approve when the items are in stock and the risk is low."""
    return {
        "approved": inventory["inventory"] == "in_stock" and fraud["risk"] == "low",
        "shipping_days": shipping["days"],
        "shipping_cost": shipping["cost"],
    }


def build() -> rf.Workflow:
    """Build the order-fulfilment workflow."""
    validate = rf.rule(condition=is_valid_order, reaction=lambda o: o, name="validate_order")
    return (
        rf.workflow(
            name="order_fulfillment", rules=[validate], outputs={"decision": "decide_fulfillment"}
        )
        .add(rf.step(check_inventory), to="validate_order")
        .add(rf.step(screen_fraud), to="validate_order")
        .add(rf.step(estimate_shipping), to="validate_order")
        .add(
            rf.step(decide_fulfillment),
            to=["check_inventory", "screen_fraud", "estimate_shipping"],
        )
    )


workflow = build()


def main(argv: list[str]) -> int:
    order = json.loads(argv[1]) if len(argv) > 1 else ORDER
    start = time.perf_counter()
    wf = build().react_until_satisfied(order)
    elapsed = time.perf_counter() - start
    print(json.dumps(wf.results(), indent=2))
    print(f"inline, one step at a time: {elapsed:.2f}s", file=sys.stderr)
    return 0 if wf.results()["decision"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
