"""State-based components (FSM, saga, aggregate, process manager) on Runic's own examples,
lowered to accumulators, rules and steps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf

# --- FSM: the traffic light ---------------------------------------------------------------


def traffic_light() -> rf.FSM:
    return rf.fsm(
        name="traffic_light",
        initial="red",
        states={
            "red": {"timer": "green", "emergency": "red"},
            "green": {"timer": "yellow", "emergency": "red"},
            "yellow": {"timer": "red", "emergency": "red"},
        },
        on_entry={"red": lambda: "traffic stopped"},
    )


def test_fsm_traffic_light_transitions() -> None:
    wf = rf.workflow(name="crossing").add(traffic_light())
    assert wf.state_of("traffic_light") == "red"  # before any event: the initial state
    wf.react_until_satisfied("timer")
    assert wf.raw_productions("traffic_light") == ["green"]
    for event in ("timer", "timer", "timer", "emergency"):
        wf.react_until_satisfied(event)
    assert wf.state_of("traffic_light") == "red"
    assert wf.raw_productions("traffic_light") == ["green", "yellow", "red", "green", "red"]
    assert wf.raw_productions("traffic_light.transition") == wf.raw_productions("traffic_light")
    # entering red (from yellow, then on the emergency) ran the entry action twice
    assert wf.raw_productions("traffic_light.on_entry.red") == ["traffic stopped"] * 2


def test_fsm_event_without_a_transition_is_a_no_op() -> None:
    wf = rf.workflow(name="crossing").add(traffic_light())
    wf.add(rf.step(lambda s: f"now {s}", name="announce"), to="traffic_light.transition")
    wf.react_until_satisfied("pedestrian")  # not an event of red: nothing happens
    wf.react_until_satisfied(42)  # not an event at all: nothing either
    assert wf.state_of("traffic_light") == "red"
    assert wf.raw_productions("traffic_light") == ["red", "red"]  # the state after each
    assert wf.raw_productions("traffic_light.transition") == []
    assert wf.raw_productions("traffic_light.on_entry.red") == []
    assert wf.raw_productions("announce") == []
    assert wf.failures() == []
    wf.react_until_satisfied({"event": "timer", "at": 3})  # a mapping with an event key
    wf.react_until_satisfied(("timer", {"at": 4}))  # a (name, payload) pair
    assert wf.raw_productions("announce") == ["now green", "now yellow"]


def test_fsm_reacts_to_signals_of_a_wait() -> None:
    wf = (
        rf.workflow(name="door")
        .add(rf.await_event(name="sensor", events=["open", "close"]))
        .add(
            rf.fsm(
                name="door",
                initial="closed",
                states={"closed": {"open": "opened"}, "opened": {"close": "closed"}},
            ),
            to="sensor",
        )
    )
    wf.react_until_satisfied("ping")
    wf.deliver_event("open")
    wf.react_until_satisfied()
    assert wf.state_of("door") == "opened"


def test_fsm_validation_names_the_problem() -> None:
    with pytest.raises(rf.WorkflowDefinitionError, match="goes to 'blue' on 'timer'"):
        rf.fsm(name="f", initial="red", states={"red": {"timer": "blue"}})
    with pytest.raises(rf.WorkflowDefinitionError, match="initial state 'off' is not one"):
        rf.fsm(name="f", initial="off", states={"red": {}})
    with pytest.raises(rf.WorkflowDefinitionError, match="on_entry names 'green'"):
        rf.fsm(name="f", initial="red", states={"red": {}}, on_entry={"green": print})
    with pytest.raises(rf.WorkflowDefinitionError, match="needs states="):
        rf.fsm(name="f", initial="red", states={})
    with pytest.raises(rf.WorkflowDefinitionError, match="takes one parent"):
        rf.workflow(name="w").add(rf.step(str, name="a")).add(rf.step(str, name="b")).add(
            traffic_light(), to=["a", "b"]
        )


def test_fsm_definitions_hash_their_transitions() -> None:
    def build(target: str) -> rf.Workflow:
        light = rf.fsm(name="l", initial="a", states={"a": {"go": target}, "b": {}, "c": {}})
        return rf.workflow(name="w").add(light)

    assert build("b").definition_hash() == build("b").definition_hash()
    assert build("b").definition_hash() != build("c").definition_hash()


def test_fsm_under_a_threaded_runner_loses_no_transition() -> None:
    with rf.Runner(executor="threads", max_concurrency=4) as runner:
        runner.start_workflow("light", rf.workflow(name="crossing").add(traffic_light()))
        for _ in range(31):
            runner.run("light", "timer")
        runner.wait("light", timeout=30)
        wf = runner.get_workflow("light")
        assert wf.state_of("traffic_light") == "green"  # 31 timers from red: 31 % 3 == 1
        cycle = ["green", "yellow", "red"]
        assert wf.raw_productions("traffic_light") == [cycle[i % 3] for i in range(31)]
        assert len(wf.raw_productions("traffic_light.transition")) == 31


# --- saga: the booking ----------------------------------------------------------------------


class Bookings:
    def __init__(self, fail_at: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_at = fail_at

    def action(self, name: str) -> Any:
        def act(trip: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
            self.calls.append(name)
            if name == self.fail_at:
                raise RuntimeError(f"{name} unavailable")
            return {"ref": f"{name}-{trip['id']}", "after": sorted(results)}

        return act

    def undo(self, name: str) -> Any:
        def compensate(result: dict[str, Any]) -> str:
            self.calls.append(f"undo {name}")
            return f"cancelled {result['ref']}"

        return compensate

    def saga(self, **kwargs: Any) -> rf.Saga:
        steps = [(n, self.action(n), self.undo(n)) for n in ("flight", "hotel", "car")]
        return rf.saga(name="booking", steps=steps, **kwargs)


def test_saga_completes_with_every_result() -> None:
    bookings = Bookings()
    wf = rf.workflow(name="trip").add(bookings.saga()).react_until_satisfied({"id": 7})
    (outcome,) = wf.raw_productions("booking")
    assert outcome["status"] == "completed"
    assert outcome["results"]["car"] == {"ref": "car-7", "after": ["flight", "hotel"]}
    assert bookings.calls == ["flight", "hotel", "car"]


def test_saga_failing_third_step_compensates_the_first_two_in_reverse() -> None:
    bookings = Bookings(fail_at="car")
    wf = rf.workflow(name="trip").add(bookings.saga()).react_until_satisfied({"id": 7})
    assert bookings.calls == ["flight", "hotel", "car", "undo hotel", "undo flight"]
    (outcome,) = wf.raw_productions("booking")
    assert outcome == {
        "saga": "booking",
        "status": "aborted",
        "failed_step": "car",
        "error": "RuntimeError: car unavailable",
        "results": {
            "flight": {"ref": "flight-7", "after": []},
            "hotel": {"ref": "hotel-7", "after": ["flight"]},
        },
        "compensated": {"hotel": "cancelled hotel-7", "flight": "cancelled flight-7"},
    }
    assert list(outcome["compensated"]) == ["hotel", "flight"]  # in the order they ran
    assert wf.failures() == []  # an aborted saga is an outcome, not a failure


def test_saga_failing_first_step_compensates_nothing() -> None:
    bookings = Bookings(fail_at="flight")
    wf = rf.workflow(name="trip").add(bookings.saga()).react_until_satisfied({"id": 1})
    assert bookings.calls == ["flight"]
    assert wf.raw_productions("booking")[0]["compensated"] == {}


def test_saga_handlers_shape_the_outcome() -> None:
    bookings = Bookings(fail_at="hotel")
    saga = bookings.saga(
        on_complete=lambda results: ("done", sorted(results)),
        on_abort=lambda failure, undone: ("aborted", failure["step"], list(undone)),
    )
    wf = rf.workflow(name="trip").add(saga).react_until_satisfied({"id": 2})
    assert wf.raw_productions("booking") == [("aborted", "hotel", ["flight"])]
    ok = rf.workflow(name="trip").add(Bookings().saga(on_complete=lambda r: len(r)))
    assert ok.react_until_satisfied({"id": 3}).raw_productions("booking") == [3]


def test_saga_actions_may_be_async_and_read_the_run_context() -> None:
    async def reserve(trip: dict[str, Any], key: str = rf.context("api_key")) -> str:
        await asyncio.sleep(0)
        return f"{trip['id']}:{key}"

    saga = rf.saga(name="s", steps=[("reserve", reserve, lambda r: None), ("log", lambda t: 1)])
    wf = rf.workflow(name="w").add(saga)
    assert wf.required_context_keys() == {"s.reserve": ["api_key"]}
    wf.react_until_satisfied({"id": 9}, run_context={"_global": {"api_key": "k"}})
    assert wf.raw_productions("s")[0]["results"] == {"reserve": "9:k", "log": 1}


def test_a_failing_compensation_is_a_failure_of_that_step() -> None:
    def boom(result: Any) -> None:
        raise OSError("cannot reach the airline")

    saga = rf.saga(
        name="s",
        steps=[("a", lambda t: 1, boom), ("b", lambda t: 1 / 0)],
    )
    wf = rf.workflow(name="w").add(saga).react_until_satisfied(1)
    assert [f.component for f in wf.failures()] == ["s.undo.a"]
    assert wf.raw_productions("s") == []  # no outcome: the saga did not finish


def test_saga_validation_names_the_problem() -> None:
    with pytest.raises(rf.WorkflowDefinitionError, match="step 'a' has no compensation"):
        rf.saga(name="s", steps=[("a", lambda t: 1), ("b", lambda t: 2)])
    with pytest.raises(rf.WorkflowDefinitionError, match="step names must be unique"):
        rf.saga(name="s", steps=[("a", lambda t: 1, print), ("a", lambda t: 2)])
    with pytest.raises(rf.WorkflowDefinitionError, match="needs steps="):
        rf.saga(name="s", steps=[])
    with pytest.raises(rf.WorkflowDefinitionError, match="must take 1 argument"):
        rf.saga(name="s", steps=[("a", lambda a, b, c: 1)])
    with pytest.raises(rf.WorkflowDefinitionError, match="needs a non-empty name"):
        rf.saga(name="", steps=[("a", lambda t: 1)])
    rf.saga(name="s", steps=[("only", lambda t: 1)])  # the last step needs no compensation


def test_saga_replays_from_its_log() -> None:
    bookings = Bookings(fail_at="car")
    wf = rf.workflow(name="trip").add(bookings.saga()).react_until_satisfied({"id": 7})
    rebuilt = rf.Workflow.from_events(wf.event_log())
    assert rebuilt.raw_productions() == wf.raw_productions()
    assert len(bookings.calls) == 5  # replay ran nothing


# --- aggregate: the bank account ---------------------------------------------------------


def deposit(state: dict[str, int], command: dict[str, Any]) -> Any:
    if command["amount"] <= 0:
        return rf.reject("deposits must be positive")
    return {"type": "deposited", "amount": command["amount"]}


def withdraw(state: dict[str, int], command: dict[str, Any]) -> Any:
    if command["amount"] > state["balance"]:
        return rf.reject(f"insufficient funds: balance {state['balance']}")
    return {"type": "withdrawn", "amount": command["amount"]}


def apply_event(state: dict[str, int], event: dict[str, Any]) -> dict[str, int]:
    sign = 1 if event["type"] == "deposited" else -1
    return {"balance": state["balance"] + sign * event["amount"]}


def account() -> rf.Aggregate:
    return rf.aggregate(
        name="account",
        init={"balance": 0},
        commands={"deposit": deposit, "withdraw": withdraw},
        apply=apply_event,
    )


def test_aggregate_rejects_an_overdraft() -> None:
    wf = rf.workflow(name="bank").add(account())
    for command in (
        {"command": "deposit", "amount": 100},
        {"command": "withdraw", "amount": 30},
        {"command": "withdraw", "amount": 500},  # overdraft
        {"command": "withdraw", "amount": 70},
    ):
        wf.react_until_satisfied(command)
    assert wf.state_of("account") == {"balance": 0}
    assert wf.raw_productions("account.events") == [
        {"type": "deposited", "amount": 100},
        {"type": "withdrawn", "amount": 30},
        {"type": "withdrawn", "amount": 70},
    ]
    assert wf.raw_productions("account.rejected") == [
        {"command": "withdraw", "reason": "insufficient funds: balance 70"}
    ]
    assert wf.raw_productions("account") == [
        {"balance": 100},
        {"balance": 70},
        {"balance": 70},  # the overdraft changed nothing
        {"balance": 0},
    ]


def test_aggregate_refuses_unknown_commands_and_isolates_handler_bugs() -> None:
    def broken(state: Any, command: Any) -> Any:
        raise KeyError("oops")

    agg = rf.aggregate(
        name="acct",
        init=lambda: {"balance": 5},
        commands={"deposit": deposit, "broken": broken},
        apply=apply_event,
    )
    wf = rf.workflow(name="bank").add(agg)
    wf.react_until_satisfied("close")
    wf.react_until_satisfied("broken")
    wf.react_until_satisfied(("deposit", None))  # a pair: the handler reads the mapping
    wf.react_until_satisfied({"command": "deposit", "amount": 1})
    assert wf.raw_productions("acct.rejected")[0]["reason"].startswith("unknown command 'close'")
    assert [f.component for f in wf.failures()] == ["acct.handle", "acct.handle"]
    assert wf.state_of("acct") == {"balance": 6}  # failed commands changed nothing


def test_aggregate_validation() -> None:
    async def handler(state: Any, command: Any) -> Any:
        return None

    with pytest.raises(rf.WorkflowDefinitionError, match="must be a plain function"):
        rf.aggregate(name="a", init=0, commands={"x": handler}, apply=lambda s, e: s)
    with pytest.raises(rf.WorkflowDefinitionError, match="needs commands="):
        rf.aggregate(name="a", init=0, commands={}, apply=lambda s, e: s)


# --- process manager: the order ----------------------------------------------------------


def order_commands() -> rf.Aggregate:
    return rf.aggregate(
        name="order",
        init={"status": "new"},
        commands={
            "submit": lambda s, c: {"event": "order_submitted", "order": c["order"]},
            "pay": lambda s, c: {"event": "payment_received", "order": c["order"]},
            "ship": lambda s, c: {"event": "shipment_created", "order": c["order"]},
        },
        apply=lambda s, e: {"status": e["event"]},
    )


def fulfilment() -> rf.ProcessManager:
    return rf.process_manager(
        name="fulfilment",
        init={"order": None, "paid": False, "shipped": False},
        on={
            "order_submitted": lambda s, e: (
                {"order": e["order"]},
                {"command": "charge", "order": e["order"]},
            ),
            "payment_received": lambda s, e: (
                {"paid": True},
                {"command": "ship", "order": s["order"]},
            ),
            "shipment_created": lambda s, e: {"shipped": True},
        },
        complete=lambda s: s["paid"] and s["shipped"],
    )


def order_workflow() -> rf.Workflow:
    return (
        rf.workflow(name="orders")
        .add(order_commands())
        .add(fulfilment(), to="order.events")
        .add(rf.step(lambda c: f"sent {c['command']}", name="dispatch"), to="fulfilment.commands")
    )


def test_process_manager_coordinates_an_order() -> None:
    wf = order_workflow()
    for command in ("submit", "pay", "ship"):
        wf.react_until_satisfied({"command": command, "order": "o-1"})
    assert wf.raw_productions("dispatch") == ["sent charge", "sent ship"]
    assert wf.state_of("fulfilment") == {"order": "o-1", "paid": True, "shipped": True}
    assert wf.raw_productions("fulfilment.completed") == [
        {"process": "fulfilment", "state": {"order": "o-1", "paid": True, "shipped": True}}
    ]
    wf.react_until_satisfied({"command": "pay", "order": "o-1"})  # after completion: ignored
    assert wf.raw_productions("dispatch") == ["sent charge", "sent ship"]
    assert len(wf.raw_productions("fulfilment.completed")) == 1


def test_process_manager_ignores_events_it_has_no_handler_for() -> None:
    wf = rf.workflow(name="pm").add(fulfilment())
    wf.react_until_satisfied({"event": "newsletter_sent"})
    assert wf.raw_productions("fulfilment.commands") == []
    assert wf.state_of("fulfilment") == {"order": None, "paid": False, "shipped": False}


def test_process_manager_handler_returning_nonsense_fails_clearly() -> None:
    pm = rf.process_manager(name="pm", init={}, on={"go": lambda s, e: 42})
    wf = rf.workflow(name="w").add(pm).react_until_satisfied("go")
    (failure,) = wf.failures()
    assert "return None, a dict of state updates, or (updates or None, command)" in str(
        failure.error
    )
    with pytest.raises(rf.WorkflowDefinitionError, match="init= must be a dict"):
        rf.process_manager(name="pm", init=3, on={"go": lambda s, e: None})


# --- all of them ---------------------------------------------------------------------------


def every_component() -> rf.Workflow:
    return (
        order_workflow()
        .add(traffic_light(), to="dispatch")
        .add(account(), to="dispatch")
        .add(Bookings(fail_at="car").saga(), to="dispatch")
    )


def test_state_based_components_replay_and_recover_from_a_store(tmp_path: Path) -> None:
    db = tmp_path / "all.db"
    with rf.Runner(store=rf.SQLiteStore(db), workflows=[every_component]) as runner:
        runner.start_workflow("all", every_component)
        for command in ("submit", "pay"):
            runner.run("all", {"command": command, "order": "o-9", "id": 5})
        runner.wait("all", timeout=30)
        before = runner.get_workflow("all").productions_by_component()
    rebuilt = rf.Workflow.from_events(rf.SQLiteStore(db).stream("all"), definition=every_component)
    assert rebuilt.productions_by_component() == before
    assert rebuilt.state_of("fulfilment")["paid"] is True
    assert rebuilt.state_of("traffic_light") == "red"  # "sent ..." is no event of the light


def test_a_composite_is_added_whole_or_not_at_all() -> None:
    wf = rf.workflow(name="w").add(rf.step(str, name="light.transition"))
    with pytest.raises(rf.WorkflowDefinitionError, match="duplicate component name"):
        wf.add(rf.fsm(name="light", initial="a", states={"a": {}}))
    assert list(wf.components) == ["light.transition"]


@rf.step
def reserve_seat(trip: dict[str, Any]) -> str:
    return f"seat for {trip['id']}"


def test_saga_steps_may_be_decorated_functions() -> None:
    saga = rf.saga(name="s", steps=[("seat", reserve_seat, lambda r: None), ("pay", lambda t: 1)])
    wf = rf.workflow(name="w").add(saga).react_until_satisfied({"id": 4})
    assert wf.raw_productions("s")[0]["results"] == {"seat": "seat for 4", "pay": 1}
