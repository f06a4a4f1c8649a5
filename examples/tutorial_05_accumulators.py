"""Tutorial 5: accumulators and state machines. State carried across inputs.

An accumulator folds every input into a state (``state = reducer(value, state)``); a state
machine is an accumulator whose reactors see each new state. Run it:
``python examples/tutorial_05_accumulators.py``, or feed it from the command line:

    runeflow run examples/tutorial_05_accumulators.py:workflow --input '{"deposit": 50}' --id acct
    runeflow send acct '{"withdraw": 80}' --definition examples/tutorial_05_accumulators.py:workflow
"""

from __future__ import annotations

from typing import Any

import runeflow as rf


def apply_movement(movement: dict[str, float], balance: float) -> float:
    return balance + movement.get("deposit", 0.0) - movement.get("withdraw", 0.0)


def count(_: Any, n: int) -> int:
    return n + 1


def next_state(event: str, state: str) -> str:
    transitions = {
        ("closed", "open"): "open",
        ("open", "close"): "closed",
        ("open", "lock"): "locked",
        ("locked", "unlock"): "open",
    }
    return transitions.get((state, event), state)


def alarm(state: str) -> str:
    return f"ALERT: door is {state}"


def build() -> rf.Workflow:
    return (
        rf.workflow(name="account", outputs={"balance": "balance", "movements": "movements"})
        .add(rf.accumulator(apply_movement, init=0.0, name="balance"))
        .add(rf.accumulator(count, init=0, name="movements"))
        .add(
            rf.rule(
                condition=lambda b: b < 0, reaction=lambda b: f"overdrawn: {b}", name="overdrawn"
            ),
            to="balance",
        )
    )


workflow = build()


def build_door() -> rf.Workflow:
    watch = rf.rule(condition=lambda s: s == "locked", reaction=alarm, name="on_locked")
    return rf.workflow(name="door").add(
        rf.state_machine(init="closed", reducer=next_state, reactors=[watch], name="door")
    )


def main() -> None:
    wf = workflow.fresh()
    for movement in ({"deposit": 100}, {"withdraw": 30}, {"withdraw": 120}):
        wf.react_until_satisfied(movement)
        print(f"after {movement}: {wf.results()}")
    print("warnings:", wf.raw_productions("overdrawn"))

    door = build_door().fresh()
    for event in ("open", "lock", "unlock", "close"):
        door.react_until_satisfied(event)
        print(f"{event:>6} -> {door.state_of('door')}")
    print("reactor output:", [v for v in door.raw_productions() if str(v).startswith("ALERT")])


if __name__ == "__main__":
    main()
