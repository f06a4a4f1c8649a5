"""Runner throughput. Run ``python bench/throughput.py`` (``--quick`` for a short run,
``--only CASE`` for one case).

Prints JSON lines; each figure is from this run, next to the model's own speed measured in
the same run (``model_*``), so that a slower or faster machine shows in both. Cases:

* ``fanout``: a 1,000-way fan-out + join through the runner (thread executor, MemoryStore),
  µs per step, against the same workflow run inline by the model.
* ``instances``: N instances of a three-step workflow through the runner, MemoryStore, on
  the inline and the thread executor; instances/s against the model's.
* ``durable_instances``: the same on SQLite (``synchronous=NORMAL``: survives SIGKILL),
  every step committed before its successor is dispatched; and with 8 threads each starting
  instances (group commit shares their transactions).
* ``durable_chain``: a 200-step chain on SQLite, every step committed (``NORMAL``); steps/s.
* ``timers``: 10,000 waiting instances whose timeouts fall due over 1-3 s (MemoryStore and
  SQLite): lateness of each firing (mean, p99, max); then 10,000 due at the same moment:
  fires/s; then one due timer among 100,000 armed: its lateness.
* ``pg_appends``: appends/s to PostgreSQL by 1 and by 8 threads, each to its own instance
  (skipped with the reason when no server answers).
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
from collections.abc import Callable, Iterator
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
        counter = iter(range(10**9))

        def through_runner() -> float:
            wid = f"fan{next(counter)}"
            start = time.perf_counter()
            runner.start_instance(definition, 0, id=wid)
            runner.wait(wid)
            elapsed = time.perf_counter() - start
            assert runner.get_results(wid, components=["join"]) == {"join": n}
            return elapsed

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


def _model_instances(n: int, trials: int) -> float:
    definition = three_step()

    def run() -> float:
        start = time.perf_counter()
        for i in range(n):
            definition.fresh().react_until_satisfied(i)
        return time.perf_counter() - start

    best, _ = best_of(trials, run)
    return n / best


def _run_instances(
    runner: rf.Runner, definition: rf.Workflow, n: int, prefix: str, starters: int = 1
) -> float:
    start = time.perf_counter()
    if starters == 1:
        for i in range(n):
            runner.start_instance(definition, i, id=f"{prefix}{i}")
    else:

        def starter(k: int) -> None:
            for i in range(k, n, starters):
                runner.start_instance(definition, i, id=f"{prefix}{i}")

        threads = [threading.Thread(target=starter, args=(k,)) for k in range(starters)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i in range(n):
        runner.wait(f"{prefix}{i}")
    elapsed = time.perf_counter() - start
    assert runner.get_results(f"{prefix}{n - 1}") == [n, 2 * n, 2 * n - 1]
    return elapsed


def instances(n: int, trials: int) -> None:
    definition = three_step()
    model_rate = _model_instances(n, trials)
    for executor in ("inline", "threads"):
        counter = iter(range(10**9))

        def work(executor: str = executor, counter: Iterator[int] = counter) -> float:
            with rf.Runner(executor=executor, recover=False) as runner:
                return _run_instances(runner, definition, n, f"r{next(counter)}-")

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
    with tempfile.TemporaryDirectory() as tmp:
        for executor, starters in (("inline", 1), ("threads", 1), ("threads", 8)):
            counter = iter(range(10**9))

            def work(
                executor: str = executor, starters: int = starters, counter: Iterator[int] = counter
            ) -> float:
                path = Path(tmp) / f"d{next(counter)}.db"
                store = rf.SQLiteStore(path)
                with rf.Runner(store=store, executor=executor, recover=False) as runner:
                    elapsed = _run_instances(runner, definition, n, "d", starters)
                store.close()
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
    with tempfile.TemporaryDirectory() as tmp:
        for executor in ("inline", "threads"):
            counter = iter(range(10**9))

            def work(executor: str = executor, counter: Iterator[int] = counter) -> float:
                store = rf.SQLiteStore(Path(tmp) / f"c{next(counter)}.db")
                with rf.Runner(store=store, executor=executor, recover=False) as runner:
                    start = time.perf_counter()
                    runner.start_instance(definition, 0, id="chain")
                    runner.wait("chain")
                    elapsed = time.perf_counter() - start
                    assert runner.get_results("chain", components=[f"s{n - 1}"]) == {
                        f"s{n - 1}": n
                    }
                cursor = store.cursor("chain")
                store.close()
                assert cursor > n  # every step's result is in the log
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


def _waiting(timeout: float) -> rf.Workflow:
    return (
        rf.workflow(name="waiting")
        .add(rf.await_event(name="approval", events=["ok"], timeout=timeout))
        .add(rf.step(lambda s: s.event, name="outcome"), to="approval")
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(int(len(ordered) * q) - 1, 0))]


def _wait_fired(runner: rf.Runner, n: int, limit: float) -> list[float]:
    deadline = time.monotonic() + limit
    while len(runner.timer_lateness()) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return runner.timer_lateness()


def timers(n: int, store_kind: str) -> None:
    """n timers due over 1-3 s; then n due at once (fires/s)."""
    with tempfile.TemporaryDirectory() as tmp:

        def make_store(name: str) -> rf.Store:
            if store_kind == "memory":
                return rf.MemoryStore()
            return rf.SQLiteStore(Path(tmp) / f"{name}.db")

        # spread: timeouts of 1.00 .. 3.00 s, set when each instance is parked
        definitions = [_waiting(round(1.0 + i / 100, 2)) for i in range(201)]
        store = make_store("spread")
        with rf.Runner(store=store, recover=False) as runner:
            start = time.perf_counter()
            for i in range(n):
                runner.start_instance(definitions[i % 201], i, id=f"t{i}")
            park_s = time.perf_counter() - start
            late = _wait_fired(runner, n, 60)
            outcomes = len(runner.list_workflows(status="idle"))
        emit(
            case="timers",
            pattern="spread_1_to_3s",
            store=store_kind,
            timers=n,
            park_s=round(park_s, 3),
            fired=len(late),
            settled_after_firing=outcomes,
            mean_lateness_ms=round(statistics.mean(late) * 1000, 2) if late else None,
            p99_lateness_ms=round(_percentile(late, 0.99) * 1000, 2) if late else None,
            max_lateness_ms=round(max(late) * 1000, 2) if late else None,
        )
        # burst: every timer due at the same moment, two seconds after the first is parked
        clock = rf.FakeClock(start=1_000_000.0)
        burst = _waiting(10.0)
        store = make_store("burst")
        with rf.Runner(store=store, clock=clock, recover=False) as runner:
            for i in range(n):
                runner.start_instance(burst, i, id=f"b{i}")
            start = time.perf_counter()
            clock.advance(10.0)
            late = _wait_fired(runner, n, 60)
            elapsed = time.perf_counter() - start
            while (
                len(runner.list_workflows(status="idle")) < n and time.perf_counter() - start < 60
            ):
                time.sleep(0.01)
            settled = time.perf_counter() - start
        emit(
            case="timers",
            pattern="burst_all_due_at_once",
            store=store_kind,
            timers=n,
            fired=len(late),
            fires_per_s=round(len(late) / elapsed),
            fired_and_settled_per_s=round(n / settled),
        )


def timers_armed(armed: int) -> None:
    """One timer due while ``armed`` others wait far in the future: its lateness."""
    far = _waiting(3600.0)
    near = _waiting(0.5)
    with rf.Runner(recover=False) as runner:
        start = time.perf_counter()
        for i in range(armed):
            runner.start_instance(far, i, id=f"f{i}")
        park_s = time.perf_counter() - start
        runner.start_instance(near, 0, id="near")
        late = _wait_fired(runner, 1, 10)
    emit(
        case="timers",
        pattern="one_due_among_armed",
        store="memory",
        armed=armed,
        park_s=round(park_s, 2),
        lateness_ms=round(late[0] * 1000, 2) if late else None,
    )


def pg_appends(seconds: float) -> None:
    dsn = os.environ.get("RUNEFLOW_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        store = rf.PostgresStore(dsn, schema="bench_appends", connect_timeout=3, max_size=8)
    except Exception as exc:  # no server: say so
        emit(case="pg_appends", skipped=f"no PostgreSQL at {dsn}: {exc}")
        return
    try:
        for concurrency in (1, 8):
            ids = [f"a{concurrency}-{k}-{time.time_ns()}" for k in range(concurrency)]
            for wid in ids:
                store.create(wid, definition_name="bench", definition_hash="h", owner="o", ttl=600)
            counts = [0] * concurrency
            stop = threading.Event()

            def appender(
                k: int,
                ids: list[str] = ids,
                stop: threading.Event = stop,
                counts: list[int] = counts,
            ) -> None:
                wid = ids[k]
                i = 0
                while not stop.is_set():
                    fact = rf.Fact(f"{k}-{i}", i, "s", "s", (), (f"{k}-{i}",))
                    store.append(wid, [ev.FactProduced(fact, None)], status="running", token=1)
                    i += 1
                counts[k] = i

            threads = [threading.Thread(target=appender, args=(k,)) for k in range(concurrency)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            emit(
                case="pg_appends",
                concurrent_instances=concurrency,
                appends_per_s=round(sum(counts) / elapsed),
                seconds=round(elapsed, 2),
            )
    finally:
        with store._connection() as conn:  # a bench-only schema
            conn.execute("DROP SCHEMA IF EXISTS bench_appends CASCADE")
        store.close()


CASES = (
    "fanout",
    "instances",
    "durable_instances",
    "durable_chain",
    "timers",
    "pg_appends",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=CASES, action="append")
    args = parser.parse_args()
    quick = args.quick
    only = set(args.only or CASES)
    trials = 3 if quick else 5
    emit(case="env", python=sys.version.split()[0], cpus=os.cpu_count())
    if "fanout" in only:
        fanout(1000, trials)
    if "instances" in only:
        instances(2000 if quick else 10_000, trials)
    if "durable_instances" in only:
        durable_instances(1000 if quick else 5000, 3)
    if "durable_chain" in only:
        durable_chain(200, trials)
    if "timers" in only:
        n = 2000 if quick else 10_000
        timers(n, "memory")
        timers(n, "sqlite")
        timers_armed(10_000 if quick else 100_000)
    if "pg_appends" in only:
        pg_appends(1.0 if quick else 3.0)


if __name__ == "__main__":
    main()
