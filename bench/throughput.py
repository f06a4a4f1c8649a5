"""Runner throughput. Run ``python bench/throughput.py`` (``--quick`` for a short run,
``--only CASE`` for some cases).

Prints JSON lines; each figure is from this run, next to what the model alone does in the
same run (``model_*``), so that a slower or faster machine shows in both. To compare two
versions of runeflow in one run, run this file twice back to back with ``PYTHONPATH``
pointing at each version's ``src``. Cases:

* ``fanout``: a 1,000-way fan-out into a join through the runner (thread executor,
  MemoryStore), µs per step, against the same workflow run inline by the model.
* ``instances``: N instances of a three-step workflow through the runner, MemoryStore, on
  the inline and the thread executor; instances/s against the model's (1,000 with
  ``--quick``, 10,000 without: the runner holds every instance it ran, so the larger run
  also pays CPython's full garbage collections over them).
* ``durable_instances``: 1,000 of them on SQLite (``synchronous=NORMAL``, which survives a
  SIGKILL), every cycle committed before its successors are dispatched; started from one
  thread, and from 8 threads at once (their appends share transactions).
* ``durable_chain``: a 200-step chain on SQLite, every step committed (``NORMAL``); steps/s.
* ``timers``: N waiting instances whose timeouts fall due over 1 to 3 s (MemoryStore and
  SQLite): lateness of the firings (mean, p99, max) and the longest full garbage
  collection meanwhile, as they come and with the parked instances frozen out of the
  collector's sight; N timers due at the same moment
  (a fake clock jumps): fires/s; one timer due among 100,000 armed: its lateness; and the
  heap per waiting instance (tracemalloc).
* ``pg_appends``: appends/s to PostgreSQL by 1 and by 8 threads, each appending to its own
  instance (skipped, saying why, when no server answers).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import runeflow as rf
from runeflow.model import events as ev

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import build_chain, three_step


def emit(**row: Any) -> dict[str, Any]:
    print(json.dumps(row), flush=True)
    return row


def best_of(trials: int, work: Callable[[], float]) -> tuple[float, float]:
    """(best, median) seconds of ``trials`` runs of ``work`` (which returns its seconds)."""
    times = []
    for _ in range(trials):
        gc.collect()
        times.append(work())
    return min(times), statistics.median(times)


@contextmanager
def sqlite_store() -> Iterator[rf.SQLiteStore]:
    """A new SQLite store in a file of its own, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        store = rf.SQLiteStore(Path(tmp) / f"{uuid.uuid4().hex}.db")
        try:
            yield store
        finally:
            store.close()


def fan_workflow(n: int) -> rf.Workflow:
    wf = rf.workflow(name="fan")
    names = [f"s{i}" for i in range(n)]
    for name in names:
        wf.add(rf.step(lambda x: x + 1, name=name))
    wf.add(rf.step(lambda *xs: sum(xs), name="join"), to=names)
    return wf


def fanout(n: int, trials: int) -> None:
    definition = fan_workflow(n)

    def model() -> float:
        start = time.perf_counter()
        wf = definition.fresh().react_until_satisfied(0)
        elapsed = time.perf_counter() - start
        assert wf.raw_productions("join") == [n]
        return elapsed

    model_best, _ = best_of(trials, model)
    with rf.Runner(executor="threads", recover=False) as runner:

        def through_runner() -> float:
            wid = uuid.uuid4().hex
            start = time.perf_counter()
            runner.start_instance(definition, 0, id=wid)
            runner.wait(wid)
            elapsed = time.perf_counter() - start
            assert runner.get_results(wid, components=["join"]) == {"join": n}
            return elapsed

        through_runner()  # the pool's threads start
        best, median = best_of(trials, through_runner)
    steps = n + 1
    emit(
        case="fanout",
        n=n,
        executor="threads",
        store="memory",
        best_us_per_step=round(best / steps * 1e6, 2),
        median_us_per_step=round(median / steps * 1e6, 2),
        model_us_per_step=round(model_best / steps * 1e6, 2),
        ratio_to_model=round(best / model_best, 2),
    )


def model_instances(n: int, trials: int) -> float:
    definition = three_step()

    def run() -> float:
        start = time.perf_counter()
        for i in range(n):
            definition.fresh().react_until_satisfied(i)
        return time.perf_counter() - start

    best, _ = best_of(trials, run)
    return n / best


def run_instances(runner: rf.Runner, definition: rf.Workflow, n: int, starters: int) -> float:
    """Start ``n`` instances (from ``starters`` threads) and wait for all; return seconds."""
    prefix = uuid.uuid4().hex[:8]
    start = time.perf_counter()
    if starters == 1:
        for i in range(n):
            runner.start_instance(definition, i, id=f"{prefix}-{i}")
    else:

        def starter(k: int) -> None:
            for i in range(k, n, starters):
                runner.start_instance(definition, i, id=f"{prefix}-{i}")

        threads = [threading.Thread(target=starter, args=(k,)) for k in range(starters)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for i in range(n):
        runner.wait(f"{prefix}-{i}")
    elapsed = time.perf_counter() - start
    assert runner.get_results(f"{prefix}-{n - 1}") == [n, 2 * n, 2 * n - 1]
    return elapsed


def instances(n: int, trials: int) -> None:
    definition = three_step()
    model_rate = model_instances(n, trials)
    for executor in ("inline", "threads"):

        def work(executor: str = executor) -> float:
            with rf.Runner(executor=executor, recover=False) as runner:
                return run_instances(runner, definition, n, 1)

        best, median = best_of(trials, work)
        emit(
            case="instances",
            n=n,
            executor=executor,
            store="memory",
            best_per_s=round(n / best),
            median_per_s=round(n / median),
            model_per_s=round(model_rate),
            share_of_model=round(n / best / model_rate, 3),
        )


def durable_instances(n: int, trials: int) -> None:
    definition = three_step()
    for executor, starters in (("inline", 1), ("threads", 1), ("threads", 8)):

        def work(executor: str = executor, starters: int = starters) -> float:
            with (
                sqlite_store() as store,
                rf.Runner(store=store, executor=executor, recover=False) as runner,
            ):
                elapsed = run_instances(runner, definition, n, starters)
                assert len(store.list("idle")) == n
                return elapsed

        best, median = best_of(trials, work)
        emit(
            case="durable_instances",
            n=n,
            executor=executor,
            starting_threads=starters,
            store="sqlite",
            synchronous="NORMAL",
            best_per_s=round(n / best),
            median_per_s=round(n / median),
        )


def durable_chain(n: int, trials: int) -> None:
    definition = build_chain(n)
    for executor in ("inline", "threads"):

        def work(executor: str = executor) -> float:
            with (
                sqlite_store() as store,
                rf.Runner(store=store, executor=executor, recover=False) as runner,
            ):
                start = time.perf_counter()
                runner.start_instance(definition, 0, id="chain")
                runner.wait("chain")
                elapsed = time.perf_counter() - start
                last = f"s{n - 1}"
                assert runner.get_results("chain", components=[last]) == {last: n}
                # every step's dispatch, result and completion is in the log
                assert store.cursor("chain") >= 3 * n
                return elapsed

        best, median = best_of(trials, work)
        emit(
            case="durable_chain",
            n=n,
            executor=executor,
            store="sqlite",
            synchronous="NORMAL",
            checkpoint="every_cycle",
            best_steps_per_s=round(n / best),
            median_steps_per_s=round(n / median),
        )


def waiting(timeout: float) -> rf.Workflow:
    return (
        rf.workflow(name="waiting")
        .add(rf.await_event(name="approval", events=["ok"], timeout=timeout))
        .add(rf.step(lambda s: s.event, name="outcome"), to="approval")
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(int(len(ordered) * q) - 1, 0))]


def wait_fired(runner: rf.Runner, n: int, limit: float) -> list[float]:
    deadline = time.monotonic() + limit
    while len(runner.timer_lateness()) < n and time.monotonic() < deadline:
        time.sleep(0.005)
    return runner.timer_lateness()


def wait_settled(runner: rf.Runner, ids: list[str], limit: float) -> None:
    deadline = time.monotonic() + limit
    for wid in ids:
        runner.wait(wid, timeout=max(deadline - time.monotonic(), 0.001))


@contextmanager
def store_of(kind: str) -> Iterator[rf.Store]:
    if kind == "memory":
        yield rf.MemoryStore()
    else:
        with sqlite_store() as store:
            yield store


def timers_spread(n: int, kind: str, freeze: bool = False) -> None:
    """``n`` instances whose waits time out at 1.00 .. 3.00 s after they park.

    With ``freeze``, the objects made while parking are moved out of the garbage collector's
    sight (``gc.freeze()``) before the first timer is due, which shows the lateness the
    runner adds apart from CPython's full collections: with tens of thousands of instances
    held, one such collection pauses every thread for tens to hundreds of milliseconds."""
    definitions = [waiting(round(1.0 + i / 100, 2)) for i in range(201)]
    pauses: list[float] = []  # full collections while the timers fire
    started = [0.0, 0.0]  # when the current collection began; 1.0 once parked

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2 and started[1]:
            pauses.append(time.perf_counter() - started[0])

    gc.collect()  # the garbage of the cases before is not this case's to collect
    gc.callbacks.append(on_gc)
    try:
        with store_of(kind) as store, rf.Runner(store=store, recover=False) as runner:
            start = time.perf_counter()
            for i in range(n):
                runner.start_instance(definitions[i % 201], i, id=f"t{i}")
            park_s = time.perf_counter() - start
            if freeze:
                gc.freeze()
            started[1] = 1.0
            late = wait_fired(runner, n, 60)
            wait_settled(runner, [f"t{i}" for i in range(n)], 30)
            idle = len(store.list("idle"))
    finally:
        gc.callbacks.remove(on_gc)
        gc.unfreeze()
    emit(
        case="timers",
        pattern="spread_1_to_3s",
        store=kind,
        timers=n,
        gc="frozen after parking" if freeze else "default",
        park_s=round(park_s, 3),
        fired=len(late),
        settled_idle=idle,
        mean_lateness_ms=round(statistics.mean(late) * 1000, 2),
        p99_lateness_ms=round(percentile(late, 0.99) * 1000, 2),
        max_lateness_ms=round(max(late) * 1000, 2),
        full_gc_while_firing=len(pauses),
        longest_full_gc_ms=round(max(pauses, default=0.0) * 1000, 1),
    )


def timers_burst(n: int, kind: str) -> None:
    """``n`` timers due at the same moment: a fake clock jumps past them all."""
    clock = rf.FakeClock(start=1_000_000.0)
    definition = waiting(10.0)
    ids = [f"b{i}" for i in range(n)]
    gc.collect()
    with store_of(kind) as store, rf.Runner(store=store, clock=clock, recover=False) as runner:
        for i, wid in enumerate(ids):
            runner.start_instance(definition, i, id=wid)
        start = time.perf_counter()
        clock.advance(10.0)
        fired = len(wait_fired(runner, n, 120))
        fired_s = time.perf_counter() - start
        wait_settled(runner, ids, 120)
        settled_s = time.perf_counter() - start
        idle = len(store.list("idle"))
    emit(
        case="timers",
        pattern="burst_all_due_at_once",
        store=kind,
        timers=n,
        fired=fired,
        settled_idle=idle,
        fires_per_s=round(fired / fired_s),
        fired_and_settled_per_s=round(n / settled_s),
    )


def timers_armed(armed: int) -> None:
    """One timer due while ``armed`` others wait far in the future: its lateness."""
    far, near = waiting(3600.0), waiting(0.5)
    with rf.Runner(recover=False) as runner:
        start = time.perf_counter()
        for i in range(armed):
            runner.start_instance(far, i, id=f"f{i}")
        park_s = time.perf_counter() - start
        runner.start_instance(near, 0, id="near")
        late = wait_fired(runner, 1, 10)
    emit(
        case="timers",
        pattern="one_due_among_armed",
        store="memory",
        armed=armed,
        park_s=round(park_s, 2),
        lateness_ms=round(late[0] * 1000, 2) if late else None,
    )


def waiting_memory(n: int) -> None:
    """Heap per waiting instance (tracemalloc: Python allocations), MemoryStore."""
    import tracemalloc

    definition = waiting(3600.0)
    gc.collect()
    tracemalloc.start()
    with rf.Runner(recover=False) as runner:
        runner.start_instance(definition, -1, id="warm")
        base = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            runner.start_instance(definition, i, id=f"w{i}")
        parked = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert len(runner.list_workflows(status="waiting")) == n + 1
    emit(
        case="memory",
        waiting_instances=n,
        store="memory",
        heap_kb_per_waiting_instance=round((parked - base) / 1024 / n, 2),
    )


def pg_appends(seconds: float) -> None:
    dsn = os.environ.get("RUNEFLOW_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        store = rf.PostgresStore(dsn, schema=schema, connect_timeout=3, max_size=8)
    except Exception as exc:  # no server: say so
        emit(case="pg_appends", skipped=f"no PostgreSQL at {dsn}: {exc}")
        return
    try:
        for concurrency in (1, 8):
            ids = [f"a{concurrency}-{k}" for k in range(concurrency)]
            for wid in ids:
                store.create(wid, definition_name="bench", definition_hash="h", owner="o", ttl=600)
            counts = [0] * concurrency
            stop = threading.Event()

            def appender(k: int, wid: str, stop: threading.Event, counts: list[int]) -> None:
                i = 0
                while not stop.is_set():
                    fact = rf.Fact(f"{wid}-{i}", i, "s", "s", (), (f"{wid}-{i}",))
                    store.append(wid, [ev.FactProduced(fact, None)], status="running", token=1)
                    i += 1
                counts[k] = i

            threads = [
                threading.Thread(target=appender, args=(k, wid, stop, counts))
                for k, wid in enumerate(ids)
            ]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            time.sleep(seconds)
            stop.set()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - start
            for k, wid in enumerate(ids):
                assert store.cursor(wid) == counts[k]
            emit(
                case="pg_appends",
                concurrent_instances=concurrency,
                appends_per_s=round(sum(counts) / elapsed),
                seconds=round(elapsed, 2),
            )
    finally:
        with store._connection() as conn:  # the bench's own schema
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        store.close()


CASES = ("fanout", "instances", "durable_instances", "durable_chain", "timers", "pg_appends")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=CASES, action="append")
    args = parser.parse_args()
    quick = args.quick
    only = set(args.only or CASES)
    trials = 3 if quick else 5
    emit(case="env", python=sys.version.split()[0], cpus=os.cpu_count(), runeflow=rf.__file__)
    if "fanout" in only:
        fanout(1000, trials)
    if "instances" in only:
        instances(1000 if quick else 10_000, trials)
    if "durable_instances" in only:
        durable_instances(1000, 3)
    if "durable_chain" in only:
        durable_chain(200, trials)
    if "timers" in only:
        n = 2000 if quick else 10_000
        for kind in ("memory", "sqlite"):
            timers_spread(n, kind)
            timers_spread(n, kind, freeze=True)
            timers_burst(n, kind)
        timers_armed(10_000 if quick else 100_000)
        waiting_memory(2000 if quick else 10_000)
    if "pg_appends" in only:
        pg_appends(1.0 if quick else 3.0)


if __name__ == "__main__":
    main()
