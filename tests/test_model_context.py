"""Run context for every component kind that calls user code, its keys, its hash, and how
later ``run_context`` values merge."""

from __future__ import annotations

from typing import Any

import pytest

import runeflow as rf


def flagged(order: dict[str, Any], enabled: bool = rf.context("discounts")) -> bool:
    return enabled and order["total"] > 0


def above(order: dict[str, Any], limit: float = rf.context("limit")) -> bool:
    return order["total"] > limit


def above_default(order: dict[str, Any], limit: float = rf.context("limit", default=100)) -> bool:
    return order["total"] > limit


def conditions_workflow() -> rf.Workflow:
    return rf.workflow(
        name="gates",
        rules=[
            rf.rule(condition=flagged, reaction=lambda o: "discount", name="discount"),
            rf.rule(condition=above, reaction=lambda o: "review", name="review"),
            rf.rule(condition=above_default, reaction=lambda o: "big", name="big"),
        ],
    )


def test_a_context_flag_in_a_condition_is_resolved() -> None:
    on = {"_global": {"discounts": True, "limit": 1000}}
    off = {"_global": {"discounts": False, "limit": 1000}}
    wf = conditions_workflow()
    assert wf.fresh().react_until_satisfied({"total": 5}, run_context=on).raw_productions() == [
        "discount"
    ]
    assert wf.fresh().react_until_satisfied({"total": 5}, run_context=off).raw_productions() == []


def test_a_context_threshold_in_a_condition_is_compared() -> None:
    wf = conditions_workflow()
    ctx = {"_global": {"discounts": False}, "review": {"limit": 50}}
    assert wf.fresh().react_until_satisfied({"total": 60}, run_context=ctx).raw_productions() == [
        "review"
    ]
    assert wf.fresh().react_until_satisfied({"total": 40}, run_context=ctx).raw_productions() == []


def test_a_context_default_in_a_condition_applies_until_overridden() -> None:
    wf = conditions_workflow()
    base = {"_global": {"discounts": False}, "review": {"limit": 10_000}}
    run = wf.fresh().react_until_satisfied({"total": 150}, run_context=base)
    assert run.raw_productions() == ["big"]  # its default, 100
    run = wf.fresh().react_until_satisfied(
        {"total": 150}, run_context={**base, "big": {"limit": 200}}
    )
    assert run.raw_productions() == []


def test_a_missing_condition_key_fails_the_rule_clearly_instead_of_not_matching() -> None:
    wf = conditions_workflow().fresh().react_until_satisfied({"total": 5})
    failed = {f.component: f.error for f in wf.failures()}
    assert set(failed) == {"discount", "review"}
    assert failed["review"].type == "runeflow.errors.RunContextError"
    assert "needs run-context key 'limit'" in failed["review"].message


def test_condition_keys_are_required_context_keys() -> None:
    wf = conditions_workflow()
    assert wf.required_context_keys() == {"discount": ["discounts"], "review": ["limit"]}


def test_reduce_and_accumulator_reducers_read_the_run_context() -> None:
    def scaled_sum(value: int, acc: int, factor: int = rf.context("factor")) -> int:
        return acc + value * factor

    def capped(value: int, state: int, cap: int = rf.context("cap")) -> int:
        return min(state + value, cap)

    wf = (
        rf.workflow(name="reducers")
        .add(rf.map(name="items"))
        .add(rf.reduce(scaled_sum, 0, map="items", name="total"), to="items")
        .add(rf.accumulator(capped, init=0, name="running"), to="items")
    )
    assert wf.required_context_keys() == {"total": ["factor"], "running": ["cap"]}
    ctx = {"total": {"factor": 10}, "running": {"cap": 4}}
    wf.react_until_satisfied([1, 2, 3], run_context=ctx)
    assert wf.failures() == []
    assert wf.results(["total", "running"]) == {"total": 60, "running": 4}


def test_state_machine_reducers_and_reactors_read_the_run_context() -> None:
    def step_by(event: str, count: int, by: int = rf.context("by")) -> int:
        return count + by

    def announce(count: int, prefix: str = rf.context("prefix")) -> str:
        return f"{prefix}{count}"

    wf = rf.workflow(name="machine").add(
        rf.state_machine(init=0, reducer=step_by, reactors=[announce], name="counter")
    )
    assert wf.required_context_keys() == {"counter": ["by"], "counter.reactor_0": ["prefix"]}
    wf.react_until_satisfied("tick", run_context={"_global": {"by": 5, "prefix": "n="}})
    assert wf.raw_productions() == [5, "n=5"]


def test_map_functions_and_pipelines_read_the_run_context() -> None:
    def add(x: int, offset: int = rf.context("offset")) -> int:
        return x + offset

    def scale(x: int, factor: int = rf.context("factor", default=2)) -> int:
        return x * factor

    single = rf.workflow(name="single").add(rf.map(add, name="shift"))
    assert single.react_until_satisfied(
        [1, 2], run_context={"shift": {"offset": 10}}
    ).raw_productions() == [11, 12]

    piped = rf.workflow(name="piped").add(rf.map([add, scale], name="both"))
    assert piped.required_context_keys() == {"both": ["offset"]}
    run = piped.fresh().react_until_satisfied([1, 2], run_context={"both": {"offset": 1}})
    assert run.raw_productions() == [4, 6]
    run = piped.fresh().react_until_satisfied([1], run_context={"both": {"offset": 1, "factor": 3}})
    assert run.raw_productions() == [6]


def test_a_context_default_is_part_of_the_component_hash() -> None:
    def a(x: int, mode: str = rf.context("mode", default="a")) -> int:
        return x

    def b(x: int, mode: str = rf.context("mode", default="b")) -> int:
        return x

    def again(x: int, mode: str = rf.context("mode", default="a")) -> int:
        return x

    assert rf.step(a, name="s").hash != rf.step(b, name="s").hash
    assert rf.step(a, name="s").hash == rf.step(again, name="s").hash
    assert repr(rf.context("mode", default="a")) == "rf.context('mode', default='a')"


def test_a_later_run_context_merges_per_component_and_key() -> None:
    def show(x: int, a: str = rf.context("a"), b: str = rf.context("b")) -> str:
        return f"{x}:{a}{b}"

    wf = rf.workflow(name="merge").add(rf.step(show))
    wf.react_until_satisfied(1, run_context={"show": {"a": "A", "b": "B"}})
    wf.react_until_satisfied(2, run_context={"show": {"b": "b"}})  # a is kept
    wf.react_until_satisfied(3)  # nothing given: everything kept
    assert wf.raw_productions() == ["1:AB", "2:Ab", "3:Ab"]
    with pytest.raises(rf.UsageError, match="run_context must be a dict"):
        wf.plan_eagerly(run_context={"show": "not a dict"})  # type: ignore[dict-item]


def test_a_later_run_context_merges_under_the_runner() -> None:
    def show(x: int, a: str = rf.context("a"), b: str = rf.context("b")) -> str:
        return f"{x}:{a}{b}"

    with rf.Runner(executor="inline") as runner:
        runner.start_workflow("m", rf.workflow(name="merge").add(rf.step(show)))
        runner.run("m", 1, run_context={"_global": {"a": "A"}, "show": {"b": "B"}})
        runner.run("m", 2, run_context={"show": {"b": "c"}})
        assert runner.wait("m", timeout=10).status is rf.Status.IDLE
        assert runner.get_results("m") == ["1:AB", "2:Ac"]


def test_the_workflow_stop_telemetry_event_has_a_duration() -> None:
    seen: list[rf.TelemetryEvent] = []
    with rf.Runner(executor="threads") as runner:
        runner.subscribe(seen.append)
        wf = rf.workflow(name="timed").add(rf.step(lambda x: x + 1, name="inc"))
        runner.start_instance(wf, 1, id="t")
        runner.wait("t", timeout=10)
    stops = [e for e in seen if e.subject == "workflow" and e.phase == "stop"]
    assert stops and all(e.duration is not None and e.duration >= 0 for e in stops)


# --- state-based components: aggregate and process-manager functions, saga parts -------------


def withdraw(
    state: dict[str, int], command: dict[str, Any], limit: int = rf.context("limit")
) -> Any:
    if command["amount"] > state["balance"] + limit:
        return rf.reject(f"over the overdraft limit of {limit}")
    return {"type": "withdrawn", "amount": command["amount"]}


def apply_withdrawal(
    state: dict[str, int], event: dict[str, Any], fee: int = rf.context("fee", default=0)
) -> dict[str, int]:
    return {"balance": state["balance"] - event["amount"] - fee}


def bank(apply: Any = apply_withdrawal) -> rf.Workflow:
    account = rf.aggregate(
        name="account", init={"balance": 10}, commands={"withdraw": withdraw}, apply=apply
    )
    return rf.workflow(name="bank").add(account)


def withdraw_50(wf: rf.Workflow, **run_context: dict[str, Any]) -> rf.Workflow:
    return wf.react_until_satisfied({"command": "withdraw", "amount": 50}, run_context=run_context)


def test_aggregate_handlers_and_apply_read_the_run_context() -> None:
    wf = bank()
    assert wf.required_context_keys() == {"account.handle": ["limit"]}
    withdraw_50(wf, account={"limit": 100})  # under the aggregate's name
    assert wf.state_of("account") == {"balance": -40}  # fee: its default
    withdraw_50(wf, account={"limit": 10})  # merged per key: the limit is now 10
    assert wf.raw_productions("account.rejected") == [
        {"command": "withdraw", "reason": "over the overdraft limit of 10"}
    ]
    # a part's own entry wins over the aggregate's, which wins over _global
    own = {"limit": 100, "fee": 2}
    run = withdraw_50(
        bank(), _global={"limit": 0, "fee": 9}, account={"fee": 1}, **{"account.handle": own}
    )
    assert run.state_of("account") == {"balance": -42}
    run = withdraw_50(bank(), _global={"limit": 40, "fee": 9}, account={"fee": 1})
    assert run.state_of("account") == {"balance": -41}


def test_a_missing_key_of_an_aggregate_fails_that_command_and_names_the_part() -> None:
    wf = withdraw_50(bank())
    (failure,) = wf.failures()
    assert failure.component == "account.handle"
    assert failure.error.type == "runeflow.errors.RunContextError"
    assert "'account.handle' needs run-context key 'limit'" in failure.error.message
    assert wf.state_of("account") == {"balance": 10}


def test_an_aggregate_context_default_is_part_of_its_hash() -> None:
    def apply_fee_1(
        state: dict[str, int], event: dict[str, Any], fee: int = rf.context("fee", default=1)
    ) -> dict[str, int]:
        return {"balance": state["balance"] - event["amount"] - fee}

    handle = [wf.graph.components["account.handle"].hash for wf in (bank(), bank(apply_fee_1))]
    assert handle[0] != handle[1]
    assert bank().graph.components["account.handle"].hash == handle[0]


def on_paid(state: dict[str, Any], event: Any, warehouse: str = rf.context("warehouse")) -> Any:
    return {"paid": True}, {"ship_from": warehouse}


def all_done(state: dict[str, Any], needed: str = rf.context("needed", default="paid")) -> bool:
    return bool(state.get(needed))


def test_process_manager_handlers_and_complete_read_the_run_context() -> None:
    manager = rf.process_manager(name="order", init={}, on={"paid": on_paid}, complete=all_done)
    wf = rf.workflow(name="orders").add(manager)
    assert wf.required_context_keys() == {"order.handle": ["warehouse"]}
    wf.react_until_satisfied("paid", run_context={"order": {"warehouse": "north"}})
    assert wf.raw_productions("order.commands") == [{"ship_from": "north"}]
    assert wf.raw_productions("order.completed") == [{"process": "order", "state": {"paid": True}}]


def test_the_run_context_reaches_these_functions_in_worker_processes() -> None:
    with rf.Runner(executor="processes", max_workers=1) as runner:
        runner.start_workflow("b", bank())
        runner.run(
            "b", {"command": "withdraw", "amount": 50}, run_context={"_global": {"limit": 50}}
        )
        assert runner.wait("b", timeout=30).status is rf.Status.IDLE
        assert runner.get_results("b", components=["account"]) == {"account": {"balance": -40}}


def test_saga_parts_read_the_entry_under_the_saga_name() -> None:
    def reserve(trip: int, region: str = rf.context("region")) -> str:
        return f"{region}-{trip}"

    def release(ref: str, region: str = rf.context("region")) -> str:
        return f"released {ref} in {region}"

    def pay(trip: int, card: str = rf.context("card")) -> None:
        raise RuntimeError(f"{card} declined")

    saga = rf.saga(name="booking", steps=[("seat", reserve, release), ("pay", pay)])
    wf = rf.workflow(name="trip").add(saga)
    context = {"booking": {"region": "eu", "card": "visa"}, "booking.pay": {"card": "amex"}}
    wf.react_until_satisfied(7, run_context=context)
    (outcome,) = wf.raw_productions("booking")
    assert outcome["error"] == "RuntimeError: amex declined"
    assert outcome["compensated"] == {"seat": "released eu-7 in eu"}


def seen_x(state: Any, seen: int = rf.state_of("x")) -> bool:
    return True


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (
            lambda bad: rf.aggregate(name="a", init={}, commands={"c": bad}, apply=lambda s, e: s),
            "aggregate 'a': the handler of command 'c' declares seen=rf.state_of('x')",
        ),
        (
            lambda bad: rf.aggregate(name="a", init={}, commands={"c": lambda s, c: 1}, apply=bad),
            "aggregate 'a': apply declares seen=rf.state_of('x')",
        ),
        (
            lambda bad: rf.process_manager(name="p", init={}, on={"e": bad}),
            "process manager 'p': the handler of event 'e' declares seen=rf.state_of('x')",
        ),
        (
            lambda bad: rf.process_manager(
                name="p", init={}, on={"e": lambda s, e: None}, complete=seen_x
            ),
            "process manager 'p': complete declares seen=rf.state_of('x')",
        ),
    ],
)
def test_meta_conditions_in_these_functions_are_refused_at_build_time(
    build: Any, named: str
) -> None:
    def bad(state: Any, value: Any, seen: int = rf.state_of("x")) -> Any:
        return None

    with pytest.raises(rf.WorkflowDefinitionError) as refused:
        build(bad)
    assert str(refused.value).startswith(named)
    assert "check it in a rule (rf.filter) in front of the" in str(refused.value)


def test_these_functions_must_take_their_arguments() -> None:
    with pytest.raises(rf.WorkflowDefinitionError, match=r"must take \(state, command\)"):
        rf.aggregate(name="a", init={}, commands={"c": lambda s: 1}, apply=lambda s, e: s)
    with pytest.raises(rf.WorkflowDefinitionError, match=r"apply must take \(state, event\)"):
        rf.aggregate(name="a", init={}, commands={"c": lambda s, c: 1}, apply=lambda s: s)
    with pytest.raises(rf.WorkflowDefinitionError, match=r"complete must take \(state\)"):
        rf.process_manager(name="p", init={}, on={"e": lambda s, e: None}, complete=lambda: 1)
