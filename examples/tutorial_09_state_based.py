"""Tutorial 9: state-based components. An FSM, a saga, an aggregate, a process manager.

Each is one constructor, added like any component and lowered to accumulators, rules and
steps, so the log, replay, recovery and policies work as for everything else. Run it:
``python examples/tutorial_09_state_based.py``, or drive the traffic light from the command
line:

    runeflow run examples/tutorial_09_state_based.py:workflow --input '"timer"' --id light
    runeflow send light '"timer"' --definition examples/tutorial_09_state_based.py:workflow
"""

from __future__ import annotations

from typing import Any

import runeflow as rf


def build_light() -> rf.Workflow:
    """An FSM: named states, and for each the events that move it elsewhere."""
    light = rf.fsm(
        name="light",
        initial="red",
        states={
            "red": {"timer": "green", "emergency": "red"},
            "green": {"timer": "yellow", "emergency": "red"},
            "yellow": {"timer": "red", "emergency": "red"},
        },
        on_entry={"red": lambda: "cars stopped"},
    )
    return rf.workflow(name="crossing", outputs={"light": "light"}).add(light)


workflow = build_light()


def book_flight(trip: dict[str, Any], results: dict[str, Any]) -> str:
    return f"FL-{trip['id']}"


def book_hotel(trip: dict[str, Any], results: dict[str, Any]) -> str:
    return f"HT-{trip['id']}"


def charge_card(trip: dict[str, Any], results: dict[str, Any]) -> str:
    if trip["card"] == "expired":
        raise ValueError("card expired")
    return f"charged {trip['price']} for {results['flight']} and {results['hotel']}"


def build_trip() -> rf.Workflow:
    """A saga: each step has the compensation that undoes it (the last one needs none)."""
    booking = rf.saga(
        name="booking",
        steps=[
            ("flight", book_flight, lambda ref: f"cancelled {ref}"),
            ("hotel", book_hotel, lambda ref: f"cancelled {ref}"),
            ("payment", charge_card),
        ],
    )
    return rf.workflow(name="trip").add(booking)


def withdraw(state: dict[str, int], command: dict[str, Any]) -> Any:
    if command["amount"] > state["balance"]:
        return rf.reject(f"insufficient funds ({state['balance']})")
    return {"withdrawn": command["amount"]}


def build_account() -> rf.Workflow:
    """An aggregate: commands checked against the state emit events; events fold into it."""
    account = rf.aggregate(
        name="account",
        init={"balance": 0},
        commands={
            "deposit": lambda state, command: {"deposited": command["amount"]},
            "withdraw": withdraw,
        },
        apply=lambda state, event: {
            "balance": state["balance"] + event.get("deposited", 0) - event.get("withdrawn", 0)
        },
    )
    return rf.workflow(name="bank").add(account)


def build_orders() -> rf.Workflow:
    """A process manager: events from elsewhere update its state and issue commands."""
    fulfilment = rf.process_manager(
        name="fulfilment",
        init={"order": None, "paid": False, "shipped": False},
        on={
            "submitted": lambda s, e: ({"order": e["order"]}, ("charge", e["order"])),
            "paid": lambda s, e: ({"paid": True}, ("ship", s["order"])),
            "shipped": lambda s, e: {"shipped": True},
        },
        complete=lambda s: s["paid"] and s["shipped"],
    )
    return (
        rf.workflow(name="orders")
        .add(fulfilment)
        .add(rf.step(lambda c: f"{c[0]} order {c[1]}", name="send"), to="fulfilment.commands")
    )


def main() -> None:
    wf = workflow.fresh()
    for event in ("timer", "timer", "honk", "timer", "emergency"):
        wf.react_until_satisfied(event)
        print(f"{event:>9} -> {wf.state_of('light')}")
    print("entry actions:", wf.raw_productions("light.on_entry.red"))
    assert wf.state_of("light") == "red"

    for card in ("valid", "expired"):
        trip = build_trip().react_until_satisfied({"id": 7, "price": 420, "card": card})
        outcome = trip.results(["booking"])["booking"]
        print(f"card {card}: {outcome['status']}", outcome.get("compensated", ""))

    bank = build_account()
    for amount, command in ((100, "deposit"), (150, "withdraw"), (30, "withdraw")):
        bank.react_until_satisfied({"command": command, "amount": amount})
    print("balance:", bank.state_of("account"))
    print("refused:", bank.raw_productions("account.rejected"))
    assert bank.state_of("account") == {"balance": 70}

    orders = build_orders()
    for event in ({"event": "submitted", "order": 12}, {"event": "paid"}, {"event": "shipped"}):
        orders.react_until_satisfied(event)
    print("sent:", orders.raw_productions("send"))
    print("completed:", orders.raw_productions("fulfilment.completed"))
    assert orders.raw_productions("send") == ["charge order 12", "ship order 12"]


if __name__ == "__main__":
    main()
