"""The runner: parallel dispatch, policies, checkpoints, errors, async API, telemetry."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import runeflow as rf
from _runner_flows import build_squares, pid_of
from runeflow.runner.executors import InlineExecutor


def order_pipeline(sleeps: tuple[float, float, float], asynchronous: bool = False) -> rf.Workflow:
    def make(name: str, seconds: float, value: dict[str, Any]):  # type: ignore[no-untyped-def]
        if asynchronous:

            async def check(order: dict[str, Any]) -> dict[str, Any]:
                await asyncio.sleep(seconds)
                return value
        else:

            def check(order: dict[str, Any]) -> dict[str, Any]:
                time.sleep(seconds)
                return value

        return rf.step(check, name=name)

    validate = rf.rule(
        condition=lambda o: isinstance(o["items"], list),
        reaction=lambda o: o,
        name="validate_order",
    )
    return (
        rf.workflow(
            name="order_fulfillment", rules=[validate], outputs={"decision": "decide_fulfillment"}
        )
        .add(make("check_inventory", sleeps[0], {"inventory": "in_stock"}), to="validate_order")
        .add(make("screen_fraud", sleeps[1], {"risk": "low"}), to="validate_order")
        .add(make("estimate_shipping", sleeps[2], {"days": 3}), to="validate_order")
        .add(
            rf.step(
                lambda i, f, s: i["inventory"] == "in_stock" and f["risk"] == "low",
                name="decide_fulfillment",
            ),
            to=["check_inventory", "screen_fraud", "estimate_shipping"],
        )
    )


ORDER = {"customer_id": "c1", "items": ["a"]}


@pytest.mark.parametrize(
    "executor,asynchronous", [("threads", False), ("asyncio", True), ("asyncio", False)]
)
def test_parallel_checks_run_concurrently(executor: str, asynchronous: bool) -> None:
    with rf.Runner(executor=executor) as runner:
        runner.start_workflow("o1", order_pipeline((0.4, 0.6, 0.3), asynchronous))
        start = time.perf_counter()
        runner.run("o1", ORDER)
        info = runner.wait("o1", timeout=10)
        elapsed = time.perf_counter() - start
    assert info.status is rf.Status.IDLE
    assert runner.get_results("o1", components=None) == {"decision": True}
    assert elapsed < 0.9  # sequential would take 1.3 s: the checks overlapped


def test_a_fast_result_is_applied_while_slow_siblings_run() -> None:
    applied: list[str] = []
    fast_applied = threading.Event()

    def slow(x: int) -> str:  # runs until the fast branch's last result has been applied
        return "slow" if fast_applied.wait(10) else "timed out"

    def on_complete(wid: str, r: rf.Runnable) -> None:
        applied.append(r.component)
        if r.component == "after_fast":
            fast_applied.set()

    wf = (
        rf.workflow(name="race")
        .add(rf.step(slow, name="slow"))
        .add(rf.step(lambda x: "fast", name="fast"))
        .add(rf.step(lambda x: x + "!", name="after_fast"), to="fast")
    )
    with rf.Runner(hooks=rf.Hooks(on_complete=on_complete)) as runner:
        runner.start_workflow("r", wf)
        runner.run("r", 1)
        runner.wait("r", timeout=30)
        results = runner.get_results("r", components=["slow", "after_fast"])
    assert results == {"slow": "slow", "after_fast": "fast!"}  # no batch barrier
    assert applied.index("after_fast") < applied.index("slow")


def test_one_hundred_instances_in_parallel() -> None:
    wf = rf.workflow(name="sleepy").add(rf.step(lambda x: time.sleep(0.2) or x * 2, name="d"))
    with rf.Runner(max_workers=100) as runner:
        start = time.perf_counter()
        for i in range(100):
            runner.start_instance(wf, i, id=f"i{i}")
        infos = [runner.wait(f"i{i}", timeout=20) for i in range(100)]
        elapsed = time.perf_counter() - start
        assert all(info.status is rf.Status.IDLE for info in infos)
        assert [runner.get_results(f"i{i}") for i in range(100)] == [[i * 2] for i in range(100)]
    assert elapsed < 100 * 0.2 / 4  # far from serial


def flaky(failures: int):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    def step(x: int) -> int:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise ConnectionError(f"attempt {calls['n']} failed")
        return x * 10

    return step, calls


def test_retries_until_success() -> None:
    step, calls = flaky(2)
    wf = rf.workflow(name="retry").add(rf.step(step, name="call_api"))
    policy = rf.Policy(max_retries=3, backoff="exponential", base_delay=0.01)
    with rf.Runner(policies={"call_api": policy}) as runner:
        runner.start_instance(wf, 4, id="r1")
        info = runner.wait("r1", timeout=5)
        assert runner.get_results("r1") == [40]
        assert info.failures == []
        log = runner.get_workflow("r1").event_log()
    attempts = [e.attempt for e in log if isinstance(e, rf.events.RunnableFailed)]
    assert attempts == [1, 2]  # attempts are in the log
    assert calls["n"] == 3


def test_retries_exhausted_fail_for_good() -> None:
    step, calls = flaky(10)
    wf = rf.workflow(name="retry2").add(rf.step(step, name="call_api"))
    with rf.Runner(policies={"call_*": rf.Policy(max_retries=2, backoff="none")}) as runner:
        runner.start_instance(wf, 4, id="r2")
        info = runner.wait("r2", timeout=5)
    assert calls["n"] == 3
    assert [f["attempt"] for f in info.failures] == [3]
    assert "attempt 3 failed" in info.failures[0]["error"]


def test_timeout_abandons_a_slow_step_and_does_not_hang() -> None:
    release = threading.Event()  # the slow step ends only once the wait has returned
    wf = (
        rf.workflow(name="slow")
        .add(rf.step(lambda x: release.wait(30) and "late", name="slow_call"))
        .add(rf.step(lambda x: "quick", name="quick"))
    )
    try:
        with rf.Runner(policies={"slow_call": rf.Policy(timeout=0.1)}) as runner:
            runner.start_instance(wf, 1, id="t")
            info = runner.wait("t", timeout=10)
            assert info.status is rf.Status.FAILED  # the timeout was never handled
            assert info.failures[0]["error_type"] == "builtins.TimeoutError"
            assert runner.get_results("t", components=["slow_call", "quick"]) == {
                "slow_call": None,
                "quick": "quick",
            }
            assert "did not finish within 0.1s" in info.failures[0]["error"]
            release.set()  # the abandoned step's late result is ignored
    finally:
        release.set()


def test_async_step_past_its_timeout_is_cancelled() -> None:
    cancelled = threading.Event()

    async def slow(x: int) -> int:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x

    wf = rf.workflow(name="aslow").add(rf.step(slow))
    with rf.Runner(executor="asyncio", policies={"slow": rf.Policy(timeout=0.1)}) as runner:
        runner.start_instance(wf, 1, id="a")
        info = runner.wait("a", timeout=5)
        # before shutdown stops the loop, which could otherwise end before the task sees it
        assert cancelled.wait(10)
    assert "cancelled" in info.failures[0]["error"]


def boom(x: int) -> int:
    raise ValueError("boom")


def two_branches() -> rf.Workflow:
    return (
        rf.workflow(name="branches")
        .add(rf.step(boom))
        .add(rf.step(lambda x: x + 1, name="after_boom"), to="boom")
        .add(rf.step(lambda x: time.sleep(0.2) or x * 2, name="slow_sibling"))
        .add(rf.step(lambda x: x + 100, name="after_sibling"), to="slow_sibling")
    )


def test_on_failure_skip_lets_siblings_carry_on() -> None:
    with rf.Runner(policies={"boom": rf.Policy(on_failure="skip")}) as runner:
        runner.start_instance(two_branches(), 1, id="s")
        info = runner.wait("s", timeout=5)
        # the sibling branch ran to the end; then the instance settled as failed
        assert runner.get_results("s", components=["after_boom", "after_sibling"]) == {
            "after_boom": None,
            "after_sibling": 102,
        }
        assert info.status is rf.Status.FAILED
        assert info.error == "component 'boom' failed: ValueError: boom"
        [failure] = info.failures
        assert failure["component"] == "boom" and failure["attempt"] == 1
        assert (failure["error_type"], failure["message"]) == ("builtins.ValueError", "boom")
        assert "raise ValueError" in failure["traceback"]
        assert runner.store.get("s").status == "failed"
        with pytest.raises(rf.InstanceStateError, match="'s' is failed"):
            runner.run("s", 2)


def test_on_failure_halt_stops_the_instance() -> None:
    with rf.Runner(policies={"boom": rf.Policy(on_failure="halt")}) as runner:
        runner.start_instance(two_branches(), 1, id="h")
        info = runner.wait("h", timeout=5)
        assert info.status is rf.Status.FAILED
        assert "component 'boom' failed: ValueError: boom" in (info.error or "")
        assert runner.get_results("h", components=["after_sibling"]) == {"after_sibling": None}
        with pytest.raises(rf.InstanceStateError, match="'h' is failed"):
            runner.run("h", 2)
        assert runner.store.get("h").status == "failed"


def test_fallback_value_replaces_the_failure() -> None:
    seen: list[str] = []

    def fallback(runnable: rf.Runnable, error: rf.ErrorInfo) -> str:
        seen.append(error.message)
        return "default"

    wf = rf.workflow(name="fb").add(rf.step(boom)).add(rf.step(str.upper), to="boom")
    with rf.Runner(
        policies={"boom": rf.Policy(max_retries=1, backoff="none", fallback=fallback)}
    ) as runner:
        runner.start_instance(wf, 1, id="f")
        info = runner.wait("f", timeout=5)
        assert runner.get_results("f") == ["default", "DEFAULT"]
    assert info.failures == []
    assert seen == ["boom"]


class ConcurrencyProbe:
    """A step function that records how many of its calls overlap."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, x: int) -> int:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.02)
        with self._lock:
            self.now -= 1
        return x


def test_max_concurrency_one_serialises() -> None:
    probe = ConcurrencyProbe()
    wf = rf.workflow(name="fan").add(rf.map(probe, name="each"))
    with rf.Runner(max_concurrency=1) as runner:
        for i in range(3):
            runner.start_instance(wf, list(range(5)), id=f"m{i}")
        for i in range(3):
            runner.wait(f"m{i}", timeout=10)
        assert sorted(runner.get_results("m2")) == [0, 1, 2, 3, 4]
    assert probe.peak == 1


def test_per_instance_max_concurrency() -> None:
    probe = ConcurrencyProbe()
    wf = rf.workflow(name="fan2").add(rf.map(probe, name="each"))
    with rf.Runner() as runner:
        runner.start_workflow("p", wf, max_concurrency=2)
        runner.run("p", list(range(8)))
        runner.wait("p", timeout=10)
    assert probe.peak == 2


def chain3() -> rf.Workflow:
    return (
        rf.workflow(name="chain3")
        .add(rf.step(lambda x: x + 1, name="a"))
        .add(rf.step(lambda x: x + 1, name="b"), to="a")
        .add(rf.step(lambda x: x + 1, name="c"), to="b")
    )


class CountingStore(rf.MemoryStore):
    """A memory store that counts appends."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[int] = []

    def append(
        self,
        workflow_id: str,
        events: Any,
        *,
        status: str | None = None,
        token: int | None = None,
    ) -> int:
        self.appends.append(len(events))
        return super().append(workflow_id, events, status=status, token=token)


@pytest.mark.parametrize(
    "strategy,expected",
    [
        ("every_cycle", 4),  # input + a dispatched, then b, c, and the settled status
        (rf.every_n(2), 2),
        ("on_complete", 1),
        ("manual", 0),
    ],
)
def test_checkpoint_strategies_observed_through_the_store(strategy: Any, expected: int) -> None:
    store = CountingStore()
    with rf.Runner(store=store, executor="inline", checkpoint=strategy) as runner:
        runner.start_workflow("c", chain3())
        runner.run("c", 0)
        runner.wait("c")
        assert len(store.appends) == expected
        if strategy == "manual":
            assert store.cursor("c") == 4  # only the build events, written by start_workflow
            runner.checkpoint("c")
        assert store.cursor("c") == len(runner.get_workflow("c").event_log())
        rebuilt = rf.Workflow.from_events(store.stream("c"), definition=chain3)
        assert rebuilt.raw_productions() == [1, 2, 3]


def test_every_cycle_appends_one_transaction_per_cycle_in_order() -> None:
    store = CountingStore()
    with rf.Runner(store=store, executor="inline") as runner:
        runner.start_workflow("c", chain3())
        runner.run("c", 0)
        runner.wait("c")
    assert store.appends[0] == 2  # the input, a dispatched (the build went with the start)
    assert sum(store.appends) + 4 == store.cursor("c")


def test_errors_name_the_instance() -> None:
    with rf.Runner() as runner:
        with pytest.raises(rf.WorkflowNotFoundError, match="'nope'"):
            runner.run("nope", 1)
        with pytest.raises(rf.WorkflowNotFoundError, match="'nope'"):
            runner.get_results("nope")
        with pytest.raises(rf.WorkflowNotFoundError):
            runner.info("nope")
        runner.start_workflow("dup", chain3())
        with pytest.raises(rf.InstanceStateError, match="'dup' already exists"):
            runner.start_workflow("dup", chain3())
        runner.stop("dup")
        with pytest.raises(rf.InstanceStateError, match="'dup' is stopped"):
            runner.run("dup", 1)
        assert runner.info("dup").status is rf.Status.STOPPED


def test_results_forms_list_and_lookup() -> None:
    with rf.Runner(executor="inline") as runner:
        runner.start_workflow("x", chain3())
        runner.run("x", 0)
        runner.run("x", 10)
        assert runner.get_results("x") == [1, 2, 3, 11, 12, 13]
        assert runner.get_results("x", components=["c"]) == {"c": 13}
        assert runner.get_results("x", components=["c"], all=True) == {"c": [3, 13]}
        facts = runner.get_results("x", components=["a"], facts=True)
        assert isinstance(facts["a"], rf.Fact)
        assert runner.list_workflows() == ["x"]
        assert runner.list_workflows(status="idle") == ["x"]
        assert runner.list_workflows(status="running") == []
        assert runner.lookup("x") is runner.get_workflow("x")
        assert runner.lookup("other") is None
        info = runner.info("x")
        assert (info.status, info.step_count) == (rf.Status.IDLE, 6)


def test_process_executor_runs_in_other_processes() -> None:
    import os

    wf = rf.workflow(name="pids").add(rf.step(pid_of))
    with rf.Runner(executor="processes", max_workers=2) as runner:
        runner.start_instance(build_squares(), [1, 2, 3, 4], id="sq")
        runner.start_instance(wf, 0, id="pid")
        runner.wait("sq", timeout=60)
        runner.wait("pid", timeout=60)
        assert runner.get_results("sq", components=["total"]) == {"total": 30}
        assert runner.get_results("pid")[0] != os.getpid()


def test_process_executor_names_a_component_it_cannot_pickle() -> None:
    wf = rf.workflow(name="lam").add(rf.step(lambda x: x, name="anonymous"))
    with rf.Runner(executor="processes") as runner:
        runner.start_instance(wf, 1, id="l")
        info = runner.wait("l", timeout=30)
    [failure] = info.failures
    assert "component 'anonymous' cannot run in a process" in failure["error"]


class RecordingExecutor(InlineExecutor):
    """Inline, but remembers what it ran."""

    name = "recording"

    def __init__(self) -> None:
        self.ran: list[str] = []

    def submit(self, runnable: rf.Runnable, done: Any) -> None:
        self.ran.append(runnable.component)
        super().submit(runnable, done)


def test_per_component_executor_override() -> None:
    recording = RecordingExecutor()
    wf = (
        rf.workflow(name="mixed")
        .add(rf.step(lambda x: x + 1, name="on_pool"))
        .add(rf.step(lambda x: x * 2, name="here"), to="on_pool")
    )
    with rf.Runner(policies={"here": rf.Policy(executor=recording)}) as runner:
        runner.start_instance(wf, 1, id="m")
        runner.wait("m", timeout=5)
        assert runner.get_results("m") == [2, 4]
    assert recording.ran == ["here"]


def test_asyncio_api() -> None:
    async def main() -> tuple[Any, Any]:
        async with rf.Runner(executor="asyncio") as runner:
            await runner.astart_workflow("a1", order_pipeline((0.05, 0.05, 0.05), True))
            await runner.arun("a1", ORDER)
            info = await runner.await_("a1", timeout=5)
            results = await runner.aget_results("a1", components=None)
            ids = await runner.astart_instance(chain3(), 0, "a2")
            await runner.await_(ids, timeout=5)
            return info, (results, await runner.aget_results("a2"))

    info, (results, chain) = asyncio.run(main())
    assert info.status is rf.Status.IDLE
    assert results == {"decision": True}
    assert chain == [1, 2, 3]


def test_telemetry_and_hooks() -> None:
    seen: list[rf.TelemetryEvent] = []
    dispatched: list[str] = []
    idle: list[str] = []
    hooks = rf.Hooks(
        on_dispatch=lambda wid, r: dispatched.append(r.component),
        on_idle=lambda wid, info: idle.append(info.status.value),
    )
    with rf.Runner(hooks=hooks) as runner:
        unsubscribe = runner.subscribe(seen.append)
        runner.start_instance(two_branches(), 1, id="tel")
        runner.wait("tel", timeout=5)
        unsubscribe()
    kinds = {(e.subject, e.phase) for e in seen}
    assert {
        ("workflow", "start"),
        ("workflow", "exception"),  # settled as failed: "boom" raised
        ("runnable", "start"),
        ("runnable", "stop"),
        ("runnable", "exception"),
        ("store", "stop"),
    } <= kinds
    stops = [e for e in seen if e.subject == "runnable" and e.phase == "stop"]
    assert all(e.duration is not None and e.duration >= 0 for e in stops)
    assert sorted(dispatched) == ["after_sibling", "boom", "slow_sibling"]
    assert idle[-1] == "failed"


def test_logging_handler(caplog: pytest.LogCaptureFixture) -> None:
    with rf.Runner(executor="inline") as runner, caplog.at_level("DEBUG", "runeflow.telemetry"):
        runner.subscribe(rf.LoggingHandler())
        runner.start_instance(chain3(), 0, id="lg")
    assert "runnable a stop" in caplog.text
    assert "workflow chain3 stop" in caplog.text


def test_workflow_definition_objects_are_never_mutated() -> None:
    definition = chain3()
    with rf.Runner(executor="inline") as runner:
        runner.start_instance(definition, 0, id="d1")
        runner.start_instance(definition, 100, id="d2")
        assert runner.get_results("d2") == [101, 102, 103]
    assert definition.raw_productions() == []


class ExplodingOnce(InlineExecutor):
    """An executor whose first submit raises (an internal error in the worker's cycle)."""

    def __init__(self) -> None:
        self.exploded = False

    def submit(self, runnable: rf.Runnable, done: Any) -> None:
        if not self.exploded:
            self.exploded = True
            raise RuntimeError("executor glitch")
        super().submit(runnable, done)


def test_worker_restarts_from_its_checkpoint_after_an_internal_error() -> None:
    with rf.Runner(executor=ExplodingOnce()) as runner:
        runner.start_workflow("w", chain3())
        runner.run("w", 0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            info = runner.info("w")
            if info.status is rf.Status.IDLE and runner.get_results("w") == [1, 2, 3]:
                break
            time.sleep(0.02)
        assert runner.get_results("w") == [1, 2, 3]


def test_completions_after_shutdown_are_ignored(tmp_path: Any) -> None:
    release = threading.Event()
    wf = (
        rf.workflow(name="late")
        .add(rf.step(lambda x: release.wait(5) and x, name="slow"))
        .add(rf.step(lambda x: x + 1, name="next"), to="slow")
    )
    store = rf.SQLiteStore(tmp_path / "late.db")
    runner = rf.Runner(store=store)
    runner.start_instance(wf, 1, id="late")
    runner.shutdown(wait=False)  # the slow step is still running
    store.close()
    release.set()
    time.sleep(0.2)  # its completion arrives after the shutdown and must be ignored
    reopened = rf.SQLiteStore(tmp_path / "late.db")
    assert reopened.get("late").status == "running"  # recoverable, not failed
    with rf.Runner(store=reopened, workflows=[lambda: wf]) as again:
        assert again.wait("late", timeout=5).status is rf.Status.IDLE
        assert again.get_results("late") == [1, 2]


def test_opentelemetry_spans() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from runeflow.runner.telemetry import OpenTelemetryHandler

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with rf.Runner(executor="inline") as runner:
        runner.subscribe(OpenTelemetryHandler(provider.get_tracer("test")))
        runner.start_instance(two_branches(), 1, id="otel")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert {"runeflow.runnable boom", "runeflow.runnable slow_sibling"} <= set(spans)
    assert spans["runeflow.runnable boom"].status.status_code.name == "ERROR"
    assert spans["runeflow.runnable slow_sibling"].status.status_code.name == "UNSET"
    assert spans["runeflow.runnable boom"].attributes["runeflow.workflow_id"] == "otel"


def test_leases_are_renewed_while_the_runner_holds_an_instance() -> None:
    store = rf.MemoryStore()
    wf = rf.workflow(name="held").add(rf.await_event(name="w", events=["go"]))
    with rf.Runner(store=store, lease_ttl=0.3) as runner:
        runner.start_instance(wf, 1, id="held")
        time.sleep(0.8)  # well past one time-to-live
        assert store.lease_owner("held") == runner.owner
        assert not store.acquire_lease("held", "someone-else", 10)
    assert store.acquire_lease("held", "someone-else", 10)  # released at shutdown


def _thread_of(x: int) -> tuple[int, str]:
    return x, threading.current_thread().name


def _runnables(n: int) -> list[rf.Runnable]:
    wf = rf.workflow(name="names")
    for i in range(n):
        wf.add(rf.step(_thread_of, name=f"s{i}"))
    wf.plan_eagerly(1)
    return list(wf.prepare_for_dispatch())


def test_thread_executor_runs_a_chain_on_the_reporting_thread() -> None:
    from runeflow.runner.executors import ThreadExecutor

    first, second, third = _runnables(3)
    executor = ThreadExecutor(max_workers=4)
    threads: dict[str, str] = {}
    finished = threading.Event()

    def done(runnable: rf.Runnable) -> None:
        threads[runnable.component] = threading.current_thread().name
        if runnable.component == "s0":  # report one result: its successors are submitted
            executor.submit(second, done)  # kept for this thread
            executor.submit(third, done)  # queued: another thread may take it
        if len(threads) == 3:
            finished.set()

    executor.submit(first, done)
    assert finished.wait(5)
    executor.shutdown()
    assert threads["s1"] == threads["s0"]
    assert all(r.status == "completed" for r in (first, second, third))


def test_thread_executor_keeps_a_kept_runnable_when_the_report_fails() -> None:
    from runeflow.runner.executors import ThreadExecutor

    first, second = _runnables(2)
    executor = ThreadExecutor(max_workers=2)
    reported: list[str] = []
    finished = threading.Event()

    def done(runnable: rf.Runnable) -> None:
        reported.append(runnable.component)
        if runnable.component == "s0":
            executor.submit(second, done)
            raise RuntimeError("the report failed after submitting a successor")
        finished.set()

    executor.submit(first, done)
    assert finished.wait(5)
    executor.shutdown()
    assert reported == ["s0", "s1"]
