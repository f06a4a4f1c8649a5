"""Tutorial 4: map and reduce. Fan a collection out, one runnable per element; gather it back.

    lines ── price_line (map, one per element) ── invoice_total (reduce)
          └─ first_three_over (a reduce that stops early with rf.halt)

Run it: ``python examples/tutorial_04_map_reduce.py``.
"""

from __future__ import annotations

from typing import Any

import runeflow as rf


def price_line(line: dict[str, Any]) -> float:
    return line["qty"] * line["unit"]


def add(value: float, total: float) -> float:
    """Reducers take ``(value, accumulated)``."""
    return total + value


def collect_until_three(value: float, seen: list[float]) -> Any:
    seen = [*seen, value]
    return rf.halt(seen) if len(seen) == 3 else seen  # rf.halt ends the reduction early


def build() -> rf.Workflow:
    return (
        rf.workflow(name="invoice", outputs={"total": "invoice_total", "first": "first_three"})
        .add(rf.step(lambda invoice: invoice["lines"], name="lines"))
        .add(rf.map(price_line, name="price_line"), to="lines")
        .add(rf.reduce(add, 0.0, map="price_line", name="invoice_total"), to="price_line")
        .add(
            rf.reduce(collect_until_three, [], map="price_line", name="first_three"),
            to="price_line",
        )
    )


workflow = build()


def main() -> None:
    invoice = {"lines": [{"qty": q, "unit": 1.5} for q in range(1, 7)]}
    wf = workflow.fresh().react_until_satisfied(invoice)
    print("line prices (in element order):", wf.raw_productions("price_line"))
    print("results:", wf.results())
    fan = [e for e in wf.event_log() if e.kind in ("fan_out_emitted", "fan_in_completed")]
    print("fan-out/fan-in:", [(e.kind, e.component, e.count) for e in fan])

    # Under a runner the elements run in parallel; the reduce still sees them in order.
    with rf.Runner(executor="threads") as runner:
        runner.start_instance(workflow, invoice, id="inv-1")
        runner.wait("inv-1", timeout=10)
        print("runner:", runner.get_results("inv-1", components=None))


if __name__ == "__main__":
    main()
