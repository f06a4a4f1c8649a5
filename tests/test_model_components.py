"""Behaviour of each component kind, run inline with react_until_satisfied."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import runeflow as rf


def test_branching_from_root() -> None:
    wf = (
        rf.workflow(name="branching")
        .add(rf.step(lambda x: x + 1, name="inc"))
        .add(rf.step(lambda x: x * 2, name="double"))
        .add(rf.step(lambda x: x - 1, name="dec"))
    )
    wf.react_until_satisfied(2)
    assert sorted(wf.raw_productions()) == [1, 3, 4]
    assert wf.productions_by_component() == {"inc": [3], "double": [4], "dec": [1]}


def test_pipeline() -> None:
    wf = rf.workflow(
        name="pipeline",
        steps=[(rf.step(lambda x: x + 1, name="inc"), [rf.step(lambda x: x * 2, name="double")])],
    )
    wf.react_until_satisfied(5)
    assert wf.raw_productions() == [6, 12]
    assert wf.raw_productions("double") == [12]


def tokenize(text: str) -> list[str]:
    return text.lower().split()


def count_words(tokens: list[str]) -> dict[str, int]:
    return dict(Counter(tokens))


def test_text_dag() -> None:
    wf = (
        rf.workflow(name="text")
        .add(rf.step(tokenize))
        .add(rf.step(count_words), to="tokenize")
        .add(rf.step(lambda counts: len(counts), name="distinct"), to="count_words")
        .add(rf.step(lambda tokens: tokens[0], name="first_word"), to="tokenize")
        .add(rf.step(lambda tokens: tokens[-1], name="last_word"), to="tokenize")
    )
    wf.react_until_satisfied("the quick fox jumps over the lazy dog")
    assert wf.results() == {"distinct": 7, "first_word": "the", "last_word": "dog"}
    assert wf.raw_productions("count_words")[0]["the"] == 2


def test_mutually_exclusive_rules_by_range() -> None:
    wf = rf.workflow(
        name="ranges",
        rules=[
            rf.rule(condition=lambda x: x < 10, reaction=lambda x: "small", name="small"),
            rf.rule(condition=lambda x: 10 <= x < 100, reaction=lambda x: "medium", name="medium"),
            rf.rule(condition=lambda x: x >= 100, reaction=lambda x: "large", name="large"),
        ],
    )
    for value, expected in [(3, "small"), (42, "medium"), (500, "large")]:
        run = wf.fresh().react_until_satisfied(value)
        assert run.raw_productions() == [expected]


def test_rule_condition_shape_errors_are_non_matches() -> None:
    wf = rf.workflow(
        name="shapes",
        rules=[
            rf.rule(condition=lambda o: o["items"], reaction=lambda o: "has items", name="k"),
            rf.rule(condition=lambda o: o.missing, reaction=lambda o: "attr", name="a"),
            rf.rule(condition=lambda o: o[5], reaction=lambda o: "idx", name="i"),
            rf.rule(condition=lambda o: o + 1, reaction=lambda o: "type", name="t"),
        ],
    )
    wf.react_until_satisfied({"other": 1})
    assert wf.raw_productions() == []
    assert wf.failures() == []


def test_rule_condition_other_errors_fail_that_rule_only() -> None:
    def boom(x: int) -> bool:
        raise RuntimeError("condition exploded")

    wf = rf.workflow(
        name="boom",
        rules=[
            rf.rule(condition=boom, reaction=lambda x: "never", name="bad"),
            rf.rule(condition=lambda x: True, reaction=lambda x: x * 10, name="good"),
        ],
    ).add(rf.step(lambda x: x + 1, name="after_bad"), to="bad")
    wf.react_until_satisfied(4)
    assert wf.raw_productions() == [40]
    [failure] = wf.failures()
    assert failure.component == "bad"
    assert "condition exploded" in failure.error.message


def test_join_receives_parent_values_in_listed_order() -> None:
    wf = (
        rf.workflow(name="join")
        .add(rf.step(lambda x: x * 2, name="double"))
        .add(rf.step(lambda x: x * 3, name="triple"))
        .add(rf.step(lambda a, b: a * b, name="product"), to=["double", "triple"])
    )
    wf.react_until_satisfied(2)
    assert wf.raw_productions("product") == [24]


def test_sibling_joins() -> None:
    wf = (
        rf.workflow(name="siblings")
        .add(rf.step(lambda x: x + 2, name="a"))
        .add(rf.step(lambda x: x + 4, name="b"))
        .add(rf.step(lambda a, b: a + b, name="sum"), to=["a", "b"])
        .add(rf.step(lambda b, a: b - a, name="diff"), to=["b", "a"])
    )
    wf.react_until_satisfied(2)
    assert wf.results(["sum", "diff"]) == {"sum": 10, "diff": 2}


def test_join_pairs_facts_of_the_same_input() -> None:
    wf = (
        rf.workflow(name="pairs")
        .add(rf.step(lambda x: x, name="a"))
        .add(rf.step(lambda x: x * 100, name="b"))
        .add(rf.step(lambda a, b: (a, b), name="pair"), to=["a", "b"])
    )
    wf.plan_eagerly(1)
    wf.plan_eagerly(2)
    runnables = wf.prepare_for_dispatch()
    for r in reversed(runnables):  # apply in an order that interleaves the two inputs
        wf.apply_runnable(rf.execute_runnable(r))
    wf.react_until_satisfied()
    assert sorted(wf.raw_productions("pair")) == [(1, 100), (2, 200)]


def test_map_reduce() -> None:
    wf = (
        rf.workflow(name="mapreduce")
        .add(rf.map(lambda x: x * 2, name="double"))
        .add(rf.reduce(lambda x, acc: acc + x, 0, map="double", name="total"))
    )
    wf.react_until_satisfied([1, 2, 3])
    assert sorted(wf.raw_productions("double")) == [2, 4, 6]
    assert wf.results(["total"]) == {"total": 12}


def test_reduce_preserves_element_order_whatever_the_completion_order() -> None:
    wf = (
        rf.workflow(name="order")
        .add(rf.map(lambda x: x, name="items"))
        .add(rf.reduce(lambda x, acc: [*acc, x], [], map="items", name="collect"))
    )
    wf.plan_eagerly(["a", "b", "c", "d"])
    for r in reversed(wf.prepare_for_dispatch()):
        wf.apply_runnable(rf.execute_runnable(r))
    wf.react_until_satisfied()
    assert wf.raw_productions("collect") == [["a", "b", "c", "d"]]


def test_map_pipeline_and_steps_after_the_map() -> None:
    wf = (
        rf.workflow(name="pipeline_map")
        .add(rf.map([lambda x: x + 1, lambda x: x * 10], name="each"))
        .add(rf.step(lambda x: -x, name="negate"), to="each")
        .add(rf.reduce(lambda x, acc: [*acc, x], [], map="each", name="gather"), to="negate")
    )
    wf.react_until_satisfied([1, 2])
    assert sorted(wf.raw_productions("each")) == [20, 30]
    assert wf.raw_productions("gather") == [[-20, -30]]


def test_equal_values_fanned_out_stay_distinct_facts() -> None:
    wf = rf.workflow(name="dupes").add(rf.map(name="split"))
    wf.react_until_satisfied([7, 7, 7])
    facts = wf.productions("split")
    assert [f.value for f in facts] == [7, 7, 7]
    assert len({f.id for f in facts}) == 3
    assert len({f.parent for f in facts}) == 1


def test_reduce_halts_early() -> None:
    seen: list[int] = []

    def until_over_five(x: int, acc: int) -> object:
        seen.append(x)
        acc += x
        return rf.halt(acc) if acc > 5 else acc

    wf = (
        rf.workflow(name="halting")
        .add(rf.map(name="items"))
        .add(rf.reduce(until_over_five, 0, map="items", name="capped"))
    )
    wf.react_until_satisfied([1, 2, 3, 4, 5])
    assert wf.raw_productions("capped") == [6]
    assert seen == [1, 2, 3]


def test_reduce_over_an_empty_collection_gives_the_initial_value() -> None:
    wf = (
        rf.workflow(name="empty")
        .add(rf.map(lambda x: x, name="items"))
        .add(rf.reduce(lambda x, acc: acc + x, 100, map="items", name="total"))
    )
    wf.react_until_satisfied([])
    assert wf.raw_productions("total") == [100]


def test_reduce_leaves_out_elements_a_rule_drops() -> None:
    wf = (
        rf.workflow(name="filter")
        .add(rf.map(name="items"))
        .add(
            rf.rule(condition=lambda x: x % 2 == 0, reaction=lambda x: x, name="evens"), to="items"
        )
        .add(rf.reduce(lambda x, acc: [*acc, x], [], map="items", name="kept"), to="evens")
    )
    wf.react_until_satisfied([1, 2, 3, 4, 6])
    assert wf.raw_productions("kept") == [[2, 4, 6]]


def test_reduce_is_skipped_when_an_element_failed() -> None:
    wf = (
        rf.workflow(name="failing_map")
        .add(rf.map(lambda x: 10 // x, name="invert"))
        .add(rf.reduce(lambda x, acc: acc + x, 0, map="invert", name="total"))
    )
    wf.react_until_satisfied([1, 0, 2])
    assert wf.raw_productions("total") == []
    assert sorted(wf.raw_productions("invert")) == [5, 10]
    assert [f.component for f in wf.failures()] == ["invert"]


def test_map_of_a_non_collection_fails_clearly() -> None:
    wf = rf.workflow(name="bad_map").add(rf.map(lambda x: x, name="items"))
    wf.react_until_satisfied(42)
    [failure] = wf.failures()
    assert "needs a collection" in failure.error.message
    assert "int" in failure.error.message


def test_accumulator_over_three_inputs() -> None:
    wf = rf.workflow(name="acc").add(
        rf.accumulator(lambda x, total: total + x, init=0, name="running_total")
    )
    for value in (5, 10, 20):
        wf.react_until_satisfied(value)
    assert wf.raw_productions("running_total") == [5, 15, 35]
    assert wf.state_of("running_total") == 35


def test_accumulator_state_is_not_mutated_behind_history() -> None:
    def add_item(x: str, items: list[str]) -> list[str]:
        items.append(x)  # mutates its argument on purpose
        return items

    wf = rf.workflow(name="mut").add(rf.accumulator(add_item, init=list, name="items"))
    for v in "abc":
        wf.react_until_satisfied(v)
    assert wf.raw_productions("items") == [["a"], ["a", "b"], ["a", "b", "c"]]


def test_accumulator_inputs_apply_one_at_a_time() -> None:
    wf = rf.workflow(name="serial").add(
        rf.accumulator(lambda x, acc: [*acc, x], init=[], name="log")
    )
    wf.plan_eagerly(1)
    wf.plan_eagerly(2)
    wf.plan_eagerly(3)
    first = wf.prepare_for_dispatch()
    assert len(first) == 1  # the others wait for this state
    wf.apply_runnable(rf.execute_runnable(first[0]))
    wf.react_until_satisfied()
    assert wf.state_of("log") == [1, 2, 3]


def lock_reducer(event: object, state: str) -> str:
    if event == ("code", "4321"):
        return "unlocked"
    if event == "lock":
        return "locked"
    return state


def test_state_machine_lock_opens_only_with_the_right_code() -> None:
    lock = rf.state_machine(
        init="locked",
        reducer=lock_reducer,
        reactors=[
            rf.rule(
                condition=lambda s: s == "unlocked", reaction=lambda s: "door open", name="open"
            )
        ],
        name="lock",
    )
    wf = rf.workflow(name="door").add(lock)
    wf.react_until_satisfied(("code", "0000"))
    assert wf.state_of("lock") == "locked"
    assert wf.raw_productions("open") == []
    wf.react_until_satisfied(("code", "4321"))
    assert wf.state_of("lock") == "unlocked"
    assert wf.raw_productions("open") == ["door open"]
    wf.react_until_satisfied("lock")
    assert wf.state_of("lock") == "locked"
    assert wf.raw_productions("open") == ["door open"]


def test_output_ports() -> None:
    wf = (
        rf.workflow(name="ports", outputs={"total": "price", "tax_due": "tax"})
        .add(rf.step(lambda o: o["qty"] * o["unit"], name="price"))
        .add(rf.step(lambda p: round(p * 0.2, 2), name="tax"), to="price")
    )
    wf.react_until_satisfied({"qty": 3, "unit": 2.5})
    assert wf.results() == {"total": 7.5, "tax_due": 1.5}
    assert wf.results(["price"]) == {"price": 7.5}
    wf.react_until_satisfied({"qty": 1, "unit": 1.0})
    assert wf.results(all=True) == {"total": [7.5, 1.0], "tax_due": [1.5, 0.2]}
    facts = wf.results(["price"], facts=True, all=True)["price"]
    assert all(isinstance(f, rf.Fact) for f in facts)


def test_results_for_unknown_component_names_it() -> None:
    wf = rf.workflow(name="r").add(rf.step(lambda x: x, name="a"))
    with pytest.raises(rf.WorkflowDefinitionError, match="no component 'nope'"):
        wf.results(["nope"])


def test_run_context_global_and_per_component() -> None:
    def price(x: int, rate: float = rf.context("rate"), currency: str = rf.context("currency")):
        return f"{x * rate:.2f} {currency}"

    def label(x: str, prefix: str = rf.context("prefix", default="total:")) -> str:
        return f"{prefix} {x}"

    wf = (
        rf.workflow(name="ctx")
        .add(rf.step(price, name="price"))
        .add(rf.step(label, name="label"), to="price")
    )
    assert wf.required_context_keys() == {"price": ["rate", "currency"]}
    wf.react_until_satisfied(
        10, run_context={"price": {"rate": 1.5}, "_global": {"rate": 9.0, "currency": "EUR"}}
    )
    assert wf.raw_productions("price") == ["15.00 EUR"]  # per-component rate wins
    assert wf.raw_productions("label") == ["total: 15.00 EUR"]  # default used


def test_missing_required_context_fails_the_runnable_with_a_clear_error() -> None:
    def charge(x: int, api_key: str = rf.context("api_key")) -> str:
        return api_key

    wf = rf.workflow(name="ctx2").add(rf.step(charge))
    wf.react_until_satisfied(1)
    [failure] = wf.failures()
    assert "needs run-context key 'api_key'" in failure.error.message


def test_run_context_is_never_logged() -> None:
    def charge(x: int, api_key: str = rf.context("api_key")) -> str:
        return "ok"

    wf = rf.workflow(name="ctx3").add(rf.step(charge))
    wf.react_until_satisfied(1, run_context={"_global": {"api_key": "s3cr3t-value"}})
    assert wf.raw_productions() == ["ok"]
    assert "s3cr3t-value" not in repr(wf.event_log())


def test_failure_isolation() -> None:
    def explode(x: int) -> int:
        raise ValueError("bad input")

    wf = (
        rf.workflow(name="isolation")
        .add(rf.step(explode, name="bad"))
        .add(rf.step(lambda x: x + 1, name="after_bad"), to="bad")
        .add(rf.step(lambda x: x * 2, name="good"))
        .add(rf.step(lambda x: x + 100, name="after_good"), to="good")
    )
    wf.react_until_satisfied(1)
    assert wf.productions_by_component() == {"good": [2], "after_good": [102]}
    [failure] = wf.failures()
    assert failure.component == "bad"
    assert failure.error.type == "builtins.ValueError"
    skipped = [e for e in wf.event_log() if isinstance(e, rf.events.DownstreamSkipped)]
    assert skipped[0].skipped == ("after_bad",)
    assert not wf.is_runnable()


def test_steps_taking_zero_one_or_many_arguments() -> None:
    wf = (
        rf.workflow(name="arity")
        .add(rf.step(lambda: "no args", name="zero"))
        .add(rf.step(lambda x: x, name="one"))
        .add(rf.step(lambda a, b: a + b, name="unpacked"))
        .add(rf.step(lambda *xs: len(xs), name="varargs"))
    )
    wf.react_until_satisfied((3, 4))
    assert wf.results() == {"zero": "no args", "one": (3, 4), "unpacked": 7, "varargs": 1}


def test_async_steps_run_inline() -> None:
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 7

    wf = (
        rf.workflow(name="async")
        .add(rf.step(fetch))
        .add(rf.step(lambda x: x + 1, name="p"), to="fetch")
    )
    wf.react_until_satisfied(6)
    assert wf.raw_productions() == [42, 43]


def test_async_steps_inside_a_running_loop() -> None:
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    async def main() -> list[object]:
        wf = rf.workflow(name="async2").add(rf.step(fetch))
        wf.plan_eagerly(1)
        [r] = wf.prepare_for_dispatch()
        wf.apply_runnable(await r.execute_async())
        wf.react_until_satisfied(10)  # sync call from inside a loop
        return wf.raw_productions()

    assert asyncio.run(main()) == [2, 11]


def test_generators_are_materialized() -> None:
    wf = (
        rf.workflow(name="gen")
        .add(rf.step(lambda n: (i * i for i in range(n)), name="squares"))
        .add(rf.map(lambda x: x + 1, name="each"), to="squares")
    )
    wf.react_until_satisfied(3)
    assert wf.raw_productions("squares") == [[0, 1, 4]]
    assert sorted(wf.raw_productions("each")) == [1, 2, 5]
