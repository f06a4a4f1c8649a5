"""Tutorial 3: joins. A step under several parents runs once it has a value from each.

    validate ─┬─ check_stock ───┐
              ├─ score_fraud ───┼─ decide
              └─ quote_shipping ┘

Under a Runner the three checks run in parallel, so the whole takes about as long as the
slowest one. Run it: ``python examples/tutorial_03_joins.py``.
"""

from __future__ import annotations

import time
from typing import Any

import runeflow as rf


def check_stock(order: dict[str, Any]) -> bool:
    time.sleep(0.3)
    return True


def score_fraud(order: dict[str, Any]) -> float:
    time.sleep(0.4)
    return 0.02


def quote_shipping(order: dict[str, Any]) -> float:
    time.sleep(0.2)
    return 4.99


def decide(in_stock: bool, fraud: float, shipping: float) -> dict[str, Any]:
    """A join's function gets one argument per parent, in the order given to ``to=``."""
    return {"ship": in_stock and fraud < 0.5, "shipping": shipping}


def build() -> rf.Workflow:
    return (
        rf.workflow(name="checks", outputs={"decision": "decide"})
        .add(rf.step(lambda order: order, name="validate"))
        .add(rf.step(check_stock), to="validate")
        .add(rf.step(score_fraud), to="validate")
        .add(rf.step(quote_shipping), to="validate")
        .add(rf.step(decide), to=["check_stock", "score_fraud", "quote_shipping"])
    )


workflow = build()


def main() -> None:
    order = {"id": 42, "items": ["a", "b"]}
    start = time.perf_counter()
    inline = workflow.fresh().react_until_satisfied(order)
    print(f"inline:  {inline.results()} in {time.perf_counter() - start:.2f}s")

    with rf.Runner(executor="threads") as runner:
        start = time.perf_counter()
        runner.start_instance(workflow, order, id="order-42")
        runner.wait("order-42", timeout=10)
        results = runner.get_results("order-42", components=None)
        print(f"threads: {results} in {time.perf_counter() - start:.2f}s")
    joins = [e for e in inline.event_log() if e.kind == "join_completed"]
    print(f"join events: {[(e.component, len(e.fact_ids)) for e in joins]}")


if __name__ == "__main__":
    main()
