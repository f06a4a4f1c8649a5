"""The Dask and Ray executors against real local clusters.

Each test runs on a ``distributed.LocalCluster(processes=True)`` (two worker processes of
one thread) and on a local Ray (``ray.init(num_cpus=2)``); one cluster per engine serves the
whole module. The Dask scheduler is configured with ``allowed-failures=0`` and Ray tasks get
``max_retries=0`` where a worker is killed, so the retry seen is runeflow's policy, not the
engine's.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf
from _cluster_flows import (
    CHAIN,
    TESTS,
    build_marked_chain,
    build_squares,
    make_flaky,
    make_sleeper,
    make_victim,
    mark_and_pass,
    need,
    pid_of,
    runs,
    square,
    wait_for,
)
from runeflow.model.workflow import load_definition
from runeflow.runner.cluster import References, approx_size

CHILD = TESTS / "_cluster_crash_child.py"


@dataclass
class Cluster:
    """One engine's local cluster, as the tests see it."""

    engine: str
    address: str
    """Where another process connects."""
    shortcut: str
    """The ``executor=`` string that reaches this cluster."""
    make: Callable[..., Any]
    """A new executor on this cluster (keyword options passed on)."""
    is_worker: Callable[[str], bool]
    """Whether an address is one of the cluster's workers."""
    killed_error: str
    """The exception type a runnable fails with when its worker dies."""
    no_retries: dict[str, Any] = field(default_factory=dict)
    """Executor options that leave retries to runeflow."""
    client: Any = None


def _dask() -> Iterator[Cluster]:
    need("distributed")
    import dask
    import distributed

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        local = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = distributed.Client(local, set_as_default=False)
    address = local.scheduler_address
    yield Cluster(
        engine="dask",
        address=address,
        shortcut="dask://" + address.removeprefix("tcp://"),
        make=lambda **options: rf.DaskExecutor(client, **options),
        is_worker=lambda a: a in client.scheduler_info()["workers"],
        killed_error="KilledWorker",
        client=client,
    )
    client.close()
    local.close()


def _ray() -> Iterator[Cluster]:
    ray = need("ray")
    env = {"env_vars": {"PYTHONPATH": str(TESTS)}}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=env)
    # start both workers now: a test's first task must not wait for a worker process to
    # start (a 0.5 s timeout would fire before it runs)
    ray.get([ray.remote(pid_of).remote(i) for i in range(2)])
    ip = ray.util.get_node_ip_address()
    yield Cluster(
        engine="ray",
        address=ray.get_runtime_context().gcs_address,
        shortcut="ray",
        make=lambda **options: rf.RayExecutor(**options),
        is_worker=lambda a: a.startswith(f"{ip}/") and len(a) > len(ip) + 8,
        killed_error="WorkerCrashedError",
        no_retries={"max_retries": 0},
    )
    ray.shutdown()


@pytest.fixture(scope="module", params=["dask", "ray"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A local cluster of each engine, shared by the module's tests."""
    yield from (_dask() if request.param == "dask" else _ray())


def _events(runner: rf.Runner) -> list[rf.TelemetryEvent]:
    seen: list[rf.TelemetryEvent] = []
    runner.subscribe(seen.append)
    return seen


def test_map_reduce_matches_inline_and_runs_in_cluster_workers(cluster: Cluster) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from runeflow.runner.telemetry import OpenTelemetryHandler

    data = list(range(20))
    inline = build_squares().react_until_satisfied(data)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with rf.Runner(executor=cluster.make()) as runner:
        runner.subscribe(OpenTelemetryHandler(provider.get_tracer("test")))
        seen = _events(runner)
        runner.start_instance(build_squares(), data, id="sq")
        info = runner.wait("sq", timeout=60)
        results = runner.get_results("sq", components=None)
        squares = runner.get_results("sq", components=["square"], all=True)
    assert info.status is rf.Status.IDLE, info
    assert results["total"] == inline.results()["total"] == sum(x * x for x in data)
    assert sorted(squares["square"]) == sorted(inline.raw_productions("square"))
    assert results["pid"] != os.getpid()  # executed in a cluster worker process

    stops = [e for e in seen if e.subject == "runnable" and e.phase == "stop"]
    assert len(stops) == len(data) + 2  # every element, the reduce and the pid step
    assert all(cluster.is_worker(e.attributes["worker_address"]) for e in stops)
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("runeflow.runnable")]
    assert len(spans) == len(stops)
    assert all(cluster.is_worker(str(s.attributes["runeflow.worker_address"])) for s in spans)


def test_a_policy_routes_one_component_to_the_cluster(cluster: Cluster) -> None:
    wf = (
        rf.workflow(name="routed")
        .add(rf.step(pid_of, name="heavy", policy=rf.Policy(executor=cluster.make())))
        .add(rf.step(pid_of, name="light"))
    )
    for attempt in range(2):  # a second runner reuses the definition and its executor
        with rf.Runner(executor="threads") as runner:
            seen = _events(runner)
            runner.start_instance(wf, 0, id="routed")
            assert runner.wait("routed", timeout=60).status is rf.Status.IDLE, attempt
            results = runner.get_results("routed", components=None)
        assert results["light"] == os.getpid()
        assert results["heavy"] != os.getpid()
        dispatched = {
            e.name: e.attributes["executor"]
            for e in seen
            if e.subject == "runnable" and e.phase == "start"
        }
        assert dispatched == {"heavy": cluster.engine, "light": "threads"}


def test_lambdas_and_closures_travel_by_the_executor_name(cluster: Cluster) -> None:
    offset = 7
    wf = (
        rf.workflow(name="lambdas")
        .add(rf.step(lambda x: x * 2, name="double"))
        .add(rf.step(lambda x: [x + offset, os.getpid()], name="shift"), to="double")
    )
    with rf.Runner(executor=cluster.shortcut) as runner:
        runner.start_instance(wf, 5, id="lambdas")
        info = runner.wait("lambdas", timeout=60)
        value, pid = runner.get_results("lambdas", components=None)["shift"]
    assert info.status is rf.Status.IDLE, info
    assert value == 17
    assert pid != os.getpid()


def test_a_workflow_file_loaded_by_path_runs_on_the_cluster(
    cluster: Cluster, tmp_path: Path
) -> None:
    (tmp_path / "flow_on_file.py").write_text(
        "import runeflow as rf\n"
        "def triple(x):\n"
        "    return 3 * x\n"
        "workflow = rf.workflow(name='on_file').add(rf.step(triple))\n"
    )
    wf = load_definition(f"{tmp_path / 'flow_on_file.py'}:workflow")
    with rf.Runner(executor=cluster.make()) as runner:
        runner.start_instance(wf, 4, id="on-file")
        info = runner.wait("on-file", timeout=60)
        assert info.status is rf.Status.IDLE, info
        assert runner.get_results("on-file") == [12]


def test_code_the_workers_cannot_import_fails_that_step_with_a_clear_error(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "only_here.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # this process only, not the workers
    monkeypatch.delitem(sys.modules, "only_here", raising=False)
    import only_here

    wf = (
        rf.workflow(name="unimportable")
        .add(rf.step(only_here.double, name="double"))
        .add(rf.step(square, name="fine"))
    )
    with rf.Runner(executor=cluster.make()) as runner:
        runner.start_instance(wf, 4, id="unimportable")
        info = runner.wait("unimportable", timeout=60)
    assert info.status is rf.Status.FAILED, info
    assert runner.get_results("unimportable", components=["fine"]) == {"fine": 16}
    (failure,) = info.failures
    assert failure["component"] == "double"
    assert failure["error_type"] == "runeflow.errors.DispatchError"
    assert "only_here" in failure["message"] and "importable" in failure["message"]


def _kill_victim(tmp_path: Path) -> None:
    pid_file = tmp_path / "victim.pid"
    wait_for(pid_file.exists, what="the victim step to start")
    wait_for(lambda: pid_file.read_text().strip() != "", what="the victim's pid")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_a_worker_killed_mid_step_fails_that_attempt_and_the_policy_retries(
    cluster: Cluster, tmp_path: Path
) -> None:
    wf = (
        rf.workflow(name="killed")
        .add(rf.step(mark_and_pass(tmp_path, "first"), name="first"))
        .add(
            rf.step(make_victim(tmp_path), name="victim", policy=rf.Policy(max_retries=1)),
            to="first",
        )
        .add(rf.step(square, name="bystander"))
    )
    with rf.Runner(executor=cluster.make(**cluster.no_retries)) as runner:
        runner.start_instance(wf, 3, id="killed")
        _kill_victim(tmp_path)
        info = runner.wait("killed", timeout=90)
        results = runner.get_results("killed", components=None)
        log = list(runner.store.stream("killed"))
    assert info.status is rf.Status.IDLE, info
    assert results == {"victim": 30, "bystander": 9}
    failed = [e for e in log if isinstance(e, rf.events.RunnableFailed)]
    assert [(e.component, e.attempt, e.final) for e in failed] == [("victim", 1, False)]
    assert failed[0].error.type.endswith(cluster.killed_error), failed[0].error
    assert runs(tmp_path, "victim") == 2
    assert runs(tmp_path, "first") == 1  # its result is in the store: never computed again


def test_a_saga_action_whose_worker_is_killed_aborts_the_saga_and_compensates(
    cluster: Cluster, tmp_path: Path
) -> None:
    steps = [
        ("first", mark_and_pass(tmp_path, "first"), mark_and_pass(tmp_path, "undo_first")),
        ("second", mark_and_pass(tmp_path, "second"), mark_and_pass(tmp_path, "undo_second")),
        ("victim", make_victim(tmp_path)),
    ]
    wf = rf.workflow(name="saga_killed").add(rf.saga(name="trip", steps=steps))
    with rf.Runner(executor=cluster.make(**cluster.no_retries)) as runner:
        runner.start_instance(wf, 3, id="saga_killed")
        _kill_victim(tmp_path)
        info = runner.wait("saga_killed", timeout=90)
        (outcome,) = runner.get_results("saga_killed", components=["trip"], all=True)["trip"]
        log = list(runner.store.stream("saga_killed"))
    assert info.status is rf.Status.IDLE, info
    assert outcome["status"] == "aborted" and outcome["failed_step"] == "victim"
    assert outcome["error"].startswith(cluster.killed_error + ": "), outcome["error"]
    assert outcome["compensated"] == {"second": 3, "first": 3}
    undone = [e.component for e in log if isinstance(e, rf.events.RunnableCompleted)][-3:-1]
    assert undone == ["trip.undo.second", "trip.undo.first"]  # in reverse order
    for name in ("first", "second", "victim", "undo_second", "undo_first"):
        assert runs(tmp_path, name) == 1, name


def test_a_large_value_lost_with_its_worker_is_put_again_for_the_retry(
    cluster: Cluster, tmp_path: Path
) -> None:
    executor = cluster.make(**cluster.no_retries)
    puts: list[int] = []
    put = executor.references._put
    executor.references._put = lambda value: (puts.append(len(value)), put(value))[1]
    big = b"\x07" * 1_500_000
    wf = rf.workflow(name="lost").add(
        rf.step(make_victim(tmp_path), name="victim", policy=rf.Policy(max_retries=1))
    )
    with rf.Runner(executor=executor) as runner:
        runner.start_instance(wf, big, id="lost")
        _kill_victim(tmp_path)
        info = runner.wait("lost", timeout=90)
        assert info.status is rf.Status.IDLE, info
        assert runner.get_results("lost") == [len(big)]
    assert puts == [len(big), len(big)]  # the failed attempt's reference was not reused
    assert len(executor.references) == 0


def test_a_timeout_fails_the_attempt_and_cancels_the_task(cluster: Cluster, tmp_path: Path) -> None:
    executor = cluster.make()
    policy = rf.Policy(timeout=0.5)
    wf = rf.workflow(name="slow").add(rf.step(make_sleeper(tmp_path), name="sleepy", policy=policy))
    try:
        with rf.Runner(executor=executor) as runner:
            runner.start_instance(wf, 1, id="slow")
            info = runner.wait("slow", timeout=30)
            assert info.status is rf.Status.FAILED, info
            assert info.failures[0]["error_type"].endswith("TimeoutError")
            assert executor.in_flight == 0
            if cluster.engine == "ray":  # Ray interrupts the running task
                wait_for((tmp_path / "interrupted").exists, what="the task to be interrupted")
            else:  # Dask forgets the task (a running thread cannot be interrupted)
                wait_for(lambda: not _dask_tasks(cluster.client, "sleepy-"), what="release")
    finally:
        (tmp_path / "stop").touch()
    assert not (tmp_path / "finished").exists() or cluster.engine == "dask"


def test_a_collected_result_is_released_even_while_its_future_is_referenced(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dask keeps a task's result while a client holds its future, and recomputes it when
    its worker dies. The executor releases each future once it has the result, not when
    the future is garbage: otherwise a step following on the same worker could be running
    when the release arrives, and a worker killed then would run a checkpointed step again
    (seen in the killed-worker test above)."""
    if cluster.engine != "dask":
        pytest.skip("Ray rebuilds a lost result only when it is fetched again: never here")
    executor = cluster.make()
    held: list[list[tuple[str, Any]]] = []  # what a slow reporting thread would still hold
    report = executor._report
    monkeypatch.setattr(
        executor, "_report", lambda items: (held.append(list(items)), report(items))[1]
    )
    got: list[rf.Runnable] = []
    runnable = rf.Runnable(
        id="r", component="kept", component_kind="step", component_hash="h", fn=square, args=(4,)
    )
    executor.submit(runnable, got.append)
    wait_for(lambda: got, what="the report")
    assert got[0].status == "completed" and got[0].result == 16
    wait_for(
        lambda: not _dask_tasks(cluster.client, "kept-"),
        timeout=10,
        what="the scheduler to forget the collected result",
    )
    assert held and held[0][0][1] is not None  # the future itself is still referenced


def test_a_slow_instance_holds_up_no_other_instance(cluster: Cluster, tmp_path: Path) -> None:
    """Cluster results are applied and checkpointed on several threads: while one
    instance's apply is stuck (a hook here; a slow store commit alike), others finish."""
    entered, release = threading.Event(), threading.Event()

    def stuck(workflow_id: str, runnable: rf.Runnable) -> None:
        entered.set()
        release.wait(60)

    wf = (
        rf.workflow(name="pair")
        .add(rf.step(square, name="first"))
        .add(rf.step(square, name="second"), to="first")
    )
    store = rf.SQLiteStore(tmp_path / "rf.db")
    with rf.Runner(store=store, executor=cluster.make()) as runner:
        try:
            runner.start_instance(wf, 2, id="slow", hooks=rf.Hooks(on_complete=stuck))
            assert entered.wait(60), "the slow instance's first result never came back"
            for i in range(4):
                runner.start_instance(wf, i, id=f"fast{i}")
            for i in range(4):
                assert runner.wait(f"fast{i}", timeout=30).status is rf.Status.IDLE
                assert runner.get_results(f"fast{i}", components=["second"]) == {"second": i**4}
        finally:
            release.set()
        assert runner.wait("slow", timeout=30).status is rf.Status.IDLE
        assert runner.get_results("slow", components=["second"]) == {"second": 16}


def test_one_instances_results_are_handed_over_in_turn(cluster: Cluster) -> None:
    """Results reported to one callback (one instance) reach it one at a time, each once."""
    executor = cluster.make()
    lock = threading.Lock()
    active, most, got = [0], [0], []

    def done(runnable: rf.Runnable) -> None:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.01)  # long enough for the next results to arrive meanwhile
        got.append(runnable.result)
        with lock:
            active[0] -= 1

    for i in range(40):
        runnable = rf.Runnable(
            id=f"r{i}",
            component="square",
            component_kind="step",
            component_hash="h",
            fn=square,
            args=(i,),
        )
        executor.submit(runnable, done)
    wait_for(lambda: len(got) == 40, timeout=60, what="every result")
    assert sorted(got) == [i * i for i in range(40)]
    assert most[0] == 1
    assert executor.in_flight == 0


def test_shutdown_waits_for_the_tasks_in_flight(cluster: Cluster, tmp_path: Path) -> None:
    executor = cluster.make()
    got: list[rf.Runnable] = []
    runnable = rf.Runnable(
        id="r",
        component="sleepy",
        component_kind="step",
        component_hash="h",
        fn=make_sleeper(tmp_path),
        args=(3,),
    )
    executor.submit(runnable, got.append)
    stopper = threading.Timer(1.0, (tmp_path / "stop").touch)
    stopper.start()
    try:
        executor.shutdown(wait=True)
        assert (tmp_path / "finished").exists()  # it ran to its end, not cancelled
    finally:
        stopper.cancel()
    wait_for(lambda: got, what="the report")
    assert got[0].status == "completed" and got[0].result == 3


def _dask_tasks(client: Any, prefix: str) -> list[str]:
    def keys(dask_scheduler: Any) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith(prefix)]

    return list(client.run_on_scheduler(keys))


def test_a_large_value_goes_to_the_cluster_once_by_reference(cluster: Cluster) -> None:
    executor = cluster.make()
    puts: list[int] = []
    put, pack = executor.references._put, executor._pack
    executor.references._put = lambda value: (puts.append(len(value)), put(value))[1]
    shipped: list[Any] = []
    executor._pack = lambda shipment: (shipped.append(shipment), pack(shipment))[1]
    big = bytes(range(256)) * 8_000  # 2 MB
    wf = rf.workflow(name="big")
    for i in range(4):
        wf.add(rf.step(lambda b, i=i: [i, len(b), hashlib.sha256(b).hexdigest()], name=f"use{i}"))
    with rf.Runner(executor=executor) as runner:
        runner.start_instance(wf, big, id="big")
        assert runner.wait("big", timeout=60).status is rf.Status.IDLE
        results = runner.get_results("big", components=None)
        runner.start_instance(wf, b"small", id="small")
        assert runner.wait("small", timeout=60).status is rf.Status.IDLE
    digest = hashlib.sha256(big).hexdigest()
    assert results == {f"use{i}": [i, len(big), digest] for i in range(4)}
    assert puts == [len(big)]  # put once, shared by the four tasks
    assert [s.slots for s in shipped[:4]] == [(("a", 0),)] * 4
    assert all(s.runnable.args == (None,) for s in shipped[:4])  # not inlined
    assert [s.slots for s in shipped[4:]] == [()] * 4  # small values travel inline
    assert len(executor.references) == 0  # released once every user reported


def test_an_unreachable_cluster_is_a_clear_error_naming_the_address(cluster: Cluster) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    with pytest.raises(rf.ClusterUnavailableError) as caught:
        if cluster.engine == "dask":
            rf.DaskExecutor(address=f"tcp://{address}", connect_timeout=2)
        else:
            rf.RayExecutor(address=address, connect_timeout=2)
    assert address in str(caught.value)
    assert address in caught.value.address
    assert isinstance(caught.value, rf.DispatchError)


def test_invalid_options_are_usage_errors(cluster: Cluster) -> None:
    with pytest.raises(rf.UsageError):
        cluster.make(large_value_bytes=-1)
    if cluster.engine == "dask":
        with pytest.raises(rf.UsageError, match="key"):
            cluster.make(key="mine")
        with pytest.raises(rf.UsageError, match="not both"):
            rf.DaskExecutor(cluster.client, address=cluster.address)
    else:
        with pytest.raises(rf.UsageError, match="Ray task option"):
            cluster.make(no_such_option=1)
        with pytest.raises(rf.UsageError, match="num_returns"):
            cluster.make(num_returns=2)


def test_the_engines_retry_options_are_refused_pointing_to_the_policy(
    cluster: Cluster,
) -> None:
    """A step's exception is caught on the worker, so the engine's own retry of a task that
    raised would never happen: the option is refused, pointing to the policy."""
    option = "retries" if cluster.engine == "dask" else "retry_exceptions"
    with pytest.raises(rf.UsageError) as caught:
        cluster.make(**{option: 2 if cluster.engine == "dask" else True})
    message = str(caught.value)
    assert f"does not take {option}=" in message
    assert "rf.Policy(max_retries=...)" in message
    if cluster.engine == "ray":  # a worker's death is still the engine's to retry
        assert "max_retries= stays" in message
        cluster.make(max_retries=1).shutdown()


def test_a_step_that_raises_is_retried_by_its_policy_on_the_cluster(
    cluster: Cluster, tmp_path: Path
) -> None:
    """What the refused option would have been for: the policy retries the step."""
    wf = rf.workflow(name="flaky").add(
        rf.step(make_flaky(tmp_path, failures=2), name="flaky", policy=rf.Policy(max_retries=2))
    )
    with rf.Runner(store=rf.SQLiteStore(tmp_path / "rf.db"), executor=cluster.make()) as runner:
        runner.start_instance(wf, 5, id="flaky")
        info = runner.wait("flaky", timeout=60)
        assert info.status is rf.Status.IDLE, info
        assert runner.get_results("flaky") == [6]
    assert runs(tmp_path, "flaky") == 3  # two failures, then the success


@pytest.mark.slow
def test_sigkill_of_the_runner_then_recovery_onto_the_cluster(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("RF_MARKERS", str(markers))
    db = tmp_path / "crash.db"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    with (tmp_path / "child.err").open("w") as err:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), cluster.engine, cluster.address, str(db)],
            env=env,
            stderr=err,
        )
        wait_for(
            lambda: len(list(markers.glob("*.run"))) >= 3 or child.poll() is not None,
            timeout=90,
            what="the child to get going",
        )
        assert child.poll() is None, (tmp_path / "child.err").read_text()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)

    store = rf.SQLiteStore(db)
    log = list(store.stream("crash-1"))
    done_before = {e.component for e in log if isinstance(e, rf.events.RunnableCompleted)}
    assert 2 <= len(done_before) < CHAIN  # killed mid-workflow
    with rf.Runner(store=store, workflows=[build_marked_chain], executor=cluster.make()) as runner:
        info = runner.wait("crash-1", timeout=120)
        results = runner.get_results("crash-1")
    assert info.status is rf.Status.IDLE, info
    assert results == list(range(1, CHAIN + 1))
    for name in done_before:
        assert runs(markers, name) == 1, f"{name} was checkpointed but ran again"
    assert all(1 <= runs(markers, f"s{i}") <= 2 for i in range(CHAIN))


# --- without a cluster ------------------------------------------------------------------


def test_import_runeflow_imports_neither_dask_nor_ray() -> None:
    code = (
        "import sys, runeflow; "
        "print(sorted(m for m in ('dask', 'distributed', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_a_missing_engine_names_the_extra_to_install(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine == "dask":
        import runeflow.runner.dask_executor as module

        monkeypatch.setattr(module, "distributed", None)
        with pytest.raises(ImportError, match=r'pip install "runeflow\[dask\]"'):
            rf.DaskExecutor()
    else:
        import runeflow.runner.ray_executor as module

        monkeypatch.setattr(module, "ray", None)
        with pytest.raises(ImportError, match=r'pip install "runeflow\[ray\]"'):
            rf.RayExecutor()


def test_executor_names_include_the_clusters() -> None:
    from runeflow.runner.executors import EXECUTOR_NAMES, check_executor

    assert {"dask", "ray"} <= set(EXECUTOR_NAMES)
    for spec in ("dask", "ray", "dask://10.0.0.1:8786", "ray://head:10001"):
        check_executor(spec)
        rf.Policy(executor=spec)
    with pytest.raises(rf.UsageError, match="dask"):
        check_executor("spark")


def test_sizes_are_estimated_without_walking_everything() -> None:
    assert approx_size(b"x" * 2_000_000) == 2_000_000
    assert approx_size("y" * 10) == 10
    assert approx_size([b"z" * 1000] * 5000) >= 5_000_000
    assert approx_size({i: b"z" * 1000 for i in range(5000)}) >= 5_000_000
    assert approx_size({b"z" * 1000 for _ in range(1)}) >= 1000
    assert approx_size(list(range(10))) < 1000


def test_references_are_shared_and_released() -> None:
    puts: list[Any] = []
    refs = References(lambda value: puts.append(value) or f"ref{len(puts)}", threshold=100)
    big, small = b"b" * 200, b"s"
    one = rf.Runnable(
        id="1",
        component="c",
        component_kind="step",
        component_hash="h",
        fn=None,
        args=(big, small),
        kwargs={"k": big},
    )
    shipment, sent, held = refs.ship(one)
    assert shipment.runnable.args == (None, small) and shipment.runnable.kwargs == {"k": None}
    assert one.args == (big, small)  # the runner's runnable keeps its values
    assert shipment.slots == (("a", 0), ("k", "k")) and sent == ["ref1", "ref1"]
    _, sent_again, held_again = refs.ship(one)
    assert sent_again == ["ref1", "ref1"] and puts == [big]  # put once
    refs.release(held)
    assert len(refs) == 1
    refs.release(held_again)
    assert len(refs) == 0
    _, _, held = refs.ship(one)
    refs.release(held, lost=True)  # its task failed on the cluster: forget the value
    assert len(refs) == 0 and len(puts) == 2
    assert References(lambda v: v, threshold=None).ship(one)[0].runnable is one


class _Recording(rf.runner.InlineExecutor):
    """An inline executor that remembers what it ran (two of them share one name)."""

    name = "recording"

    def __init__(self) -> None:
        self.ran: list[str] = []

    def submit(self, runnable: rf.Runnable, done: Callable[[rf.Runnable], None]) -> None:
        self.ran.append(runnable.component)
        super().submit(runnable, done)


def test_two_executors_of_one_kind_in_policies_each_run_their_components() -> None:
    first, second = _Recording(), _Recording()  # e.g. two Dask clusters
    wf = (
        rf.workflow(name="two_clusters")
        .add(rf.step(square, name="a", policy=rf.Policy(executor=first)))
        .add(rf.step(square, name="b", policy=rf.Policy(executor=second)))
    )
    with rf.Runner(executor="inline") as runner:
        runner.start_instance(wf, 3, id="two")
        assert runner.get_results("two", components=None) == {"a": 9, "b": 9}
    assert (first.ran, second.ran) == (["a"], ["b"])
