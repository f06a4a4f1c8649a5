"""Dask and Ray executor benchmarks. Run ``python bench/cluster.py`` (``--quick``: shorter).

Prints JSON lines; ratios are computed within the run. Clusters are local: a
``distributed.LocalCluster`` of two worker processes with one thread each, and
``ray.init(num_cpus=2)``; their start-up is reported apart and never timed with the work.
Cases:

* ``fanout``: a map of 8 elements, each ~0.25 s of pure-Python CPU work (calibrated on this
  machine), on threads, processes, Dask and Ray; wall time (best of three, after a warm-up
  run) against the ideal on two cores (8 x 0.25 / 2 = 1 s).
* ``chain``: a 1,000-step chain of trivial steps through ``DaskExecutor`` (memory store,
  checkpoint every cycle) against the same chain as Dask's own ``delayed`` graph, and against
  Dask futures driven one at a time from the client (``client.submit(...).result()`` in a
  loop: the least any orchestrator that must see each result before starting the next can
  do); per-step milliseconds and runeflow's ratio to each. The same for ``RayExecutor``
  against Ray's own chained ``f.remote(ref)`` and a ``ray.get(f.remote(x))`` loop.
* ``instances``: 200 instances (started from 8 threads) of a three-step chain
  (``--instance-steps``) whose steps run on the cluster, every cycle checkpointed, on SQLite
  (``synchronous=NORMAL``), on PostgreSQL, and on the same PostgreSQL reached through a
  relay process that delays every packet by 2 ms each way (a server on another host; both
  skipped, saying why, when no server answers): instances/s (best of three, after a
  warm-up), and the store transactions the last run's appends took (``transactions``,
  ``appends``; on SQLite, creating an instance is one of them): the group commit writes
  concurrent appends in one. Once with the results applied and checkpointed by one thread
  (``drivers=1``, as when one thread did it for every instance), once with the default pool
  (:data:`runeflow.runner.cluster.DRIVERS` threads); ``--drivers N`` (repeatable) runs
  other pool sizes instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import runeflow as rf

WORK_SECONDS = 0.25
FANOUT = 8
CORES = 2
INSTANCES = 200
STARTERS = 8
"""Threads starting the instances of the ``instances`` case (a start is a transaction)."""
CASES = ("fanout", "chain", "instances")


def emit(**row: Any) -> dict[str, Any]:
    print(json.dumps(row), flush=True)
    return row


def spin(n: int) -> int:
    """Pure-Python CPU work (holds the GIL)."""
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def calibrate() -> int:
    """Loop count for ~WORK_SECONDS of :func:`spin` on one core."""
    n = 200_000
    while True:
        took = min(_timed(spin, n) for _ in range(3))  # the least disturbed of three
        if took > 0.05:
            return int(n * WORK_SECONDS / took)
        n *= 4


def _timed(fn: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return time.perf_counter() - start


def inc(x: int) -> int:
    return x + 1


def fanout_workflow() -> rf.Workflow:
    return rf.workflow(name="fanout").add(rf.map(spin, name="burn"))


def timed_fanout(executor: Any, n: int, runs: int) -> list[float]:
    times = []
    with rf.Runner(executor=executor) as runner:
        for i in range(runs + 1):  # the first run warms the workers up
            start = time.perf_counter()
            runner.start_instance(fanout_workflow(), [n] * FANOUT, id=f"f{i}")
            info = runner.wait(f"f{i}", timeout=600)
            assert info.status is rf.Status.IDLE, info
            if i:
                times.append(time.perf_counter() - start)
    return times


def bench_fanout(n: int, runs: int, executors: dict[str, Callable[[], Any]]) -> None:
    ideal = FANOUT * WORK_SECONDS / CORES
    for name, make in executors.items():
        times = timed_fanout(make(), n, runs)
        best = min(times)
        emit(
            case="fanout",
            executor=name,
            elements=FANOUT,
            work_s=WORK_SECONDS,
            best_s=round(best, 3),
            runs_s=[round(t, 3) for t in times],
            ideal_s=ideal,
            ratio_to_ideal=round(best / ideal, 2),
        )


def chain_workflow(steps: int) -> rf.Workflow:
    wf = rf.workflow(name="chain")
    prev = None
    for i in range(steps):
        wf.add(rf.step(inc, name=f"s{i}"), to=prev)
        prev = f"s{i}"
    return wf


def runeflow_chain(executor: Any, steps: int) -> float:
    wf = chain_workflow(steps)
    with rf.Runner(executor=executor) as runner:
        start = time.perf_counter()
        runner.start_instance(wf, 0, id="chain")
        info = runner.wait("chain", timeout=3600)
        took = time.perf_counter() - start
        assert info.status is rf.Status.IDLE, info
        assert runner.get_results("chain", components=[f"s{steps - 1}"]) == {
            f"s{steps - 1}": steps
        }
    return took


def emit_chain(engine: str, steps: int, runeflow_s: float, own_s: float, loop_s: float) -> None:
    emit(
        case="chain",
        engine=engine,
        steps=steps,
        runeflow_ms_per_step=round(runeflow_s / steps * 1000, 3),
        engine_graph_ms_per_step=round(own_s / steps * 1000, 3),
        engine_loop_ms_per_step=round(loop_s / steps * 1000, 3),
        ratio_to_engine_graph=round(runeflow_s / own_s, 2),
        ratio_to_engine_loop=round(runeflow_s / loop_s, 2),
    )


@contextmanager
def sqlite_store() -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = rf.SQLiteStore(Path(tmp) / "bench.db")
        try:
            yield store
        finally:
            store.close()


PG_DSN = os.environ.get("RUNEFLOW_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RELAY_DELAY = 0.002
"""Seconds the relay to PostgreSQL delays every packet, each way."""


async def _relay(target: tuple[str, int], delay: float, ready: Any) -> None:
    """Accept connections and pass their bytes on to ``target`` and back, ``delay`` late."""
    loop = asyncio.get_running_loop()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        while data := await reader.read(1 << 16):
            queue.put_nowait((loop.time() + delay, data))
        queue.put_nowait((loop.time() + delay, b""))
        await sender

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    ready.send(server.sockets[0].getsockname()[1])
    await server.serve_forever()


def run_relay(target: tuple[str, int], delay: float, ready: Any) -> None:
    asyncio.run(_relay(target, delay, ready))


@contextmanager
def relayed_dsn(dsn: str, delay: float) -> Iterator[str]:
    """``dsn`` through a relay process adding ``delay`` seconds each way."""
    url = urlsplit(dsn)
    target = (url.hostname or "127.0.0.1", url.port or 5432)
    spawn = multiprocessing.get_context("spawn")  # a fork would copy the cluster's threads
    ours, theirs = spawn.Pipe()
    relay = spawn.Process(target=run_relay, args=(target, delay, theirs), daemon=True)
    relay.start()
    try:
        port = ours.recv()
        yield url._replace(netloc=f"{url.username or ''}@127.0.0.1:{port}").geturl()
    finally:
        relay.kill()
        relay.join()


@contextmanager
def relayed_postgres_store() -> Iterator[Any]:
    with relayed_dsn(PG_DSN, RELAY_DELAY) as dsn, postgres_store(dsn) as store:
        yield store


@contextmanager
def postgres_store(dsn: str = PG_DSN) -> Iterator[Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    store = rf.PostgresStore(dsn, schema=schema, connect_timeout=3, max_size=8)
    try:
        yield store
    finally:
        with store._connection() as conn:  # the bench's own schema
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        store.close()


def with_drivers(count: int | None) -> None:
    """Hand cluster results to runners on ``count`` threads from now on (``None``: as is)."""
    from runeflow.runner import cluster

    if count is not None:
        cluster._REPORTER = cluster._Reporter(count)


def timed_instances(store: Any, executor: Any, n: int, steps: int) -> float:
    """Start ``n`` chains of ``steps`` steps from :data:`STARTERS` threads, wait for all;
    return seconds."""
    definition = chain_workflow(steps)
    with rf.Runner(store=store, executor=executor, recover=False) as runner:
        prefix = uuid.uuid4().hex[:8]

        def starter(k: int) -> None:
            for i in range(k, n, STARTERS):
                runner.start_instance(definition, i, id=f"{prefix}-{i}")

        threads = [threading.Thread(target=starter, args=(k,)) for k in range(STARTERS)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for i in range(n):
            info = runner.wait(f"{prefix}-{i}", timeout=600)
            assert info.status is rf.Status.IDLE, info
        took = time.perf_counter() - start
        last = f"s{steps - 1}"
        assert runner.get_results(f"{prefix}-{n - 1}", components=[last]) == {last: n - 1 + steps}
    return took


def bench_instances(
    engine: str, make: Callable[[], Any], runs: int, sizes: list[int] | None, steps: int
) -> None:
    from runeflow.runner import cluster

    default = getattr(cluster, "DRIVERS", None)  # None: a version without the pool
    stores = {
        "sqlite": sqlite_store,
        "postgres": postgres_store,
        f"postgres+{RELAY_DELAY * 1000:g}ms": relayed_postgres_store,
    }
    for drivers in sizes or ((1, default) if default else (None,)):
        with_drivers(drivers)
        for store_name, open_store in stores.items():
            try:
                with open_store() as store:
                    timed_instances(store, make(), 20, steps)  # warm-up
                    times, batches, items = [], 0, 0
                    for _ in range(runs):
                        before = (store._commits.batches, store._commits.items)
                        times.append(timed_instances(store, make(), INSTANCES, steps))
                        batches = store._commits.batches - before[0]
                        items = store._commits.items - before[1]
            except Exception as exc:  # no PostgreSQL server: say so
                if not store_name.startswith("postgres"):
                    raise
                emit(case="instances", engine=engine, store=store_name, skipped=repr(exc))
                continue
            emit(
                case="instances",
                engine=engine,
                store=store_name,
                instances=INSTANCES,
                steps=steps,
                drivers=drivers,
                best_per_s=round(INSTANCES / min(times), 1),
                runs_per_s=[round(INSTANCES / t, 1) for t in times],
                transactions=batches,
                appends=items,
                appends_per_transaction=round(items / batches, 2) if batches else None,
            )
    with_drivers(default)


def bench_dask(n: int, runs: int, steps: int, only: set[str], args: argparse.Namespace) -> None:
    import dask
    import distributed

    start = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=CORES, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster, set_as_default=False)
    emit(case="startup", engine="dask", seconds=round(time.perf_counter() - start, 2))
    try:
        if "fanout" in only:
            bench_fanout(n, runs, {"dask": lambda: rf.DaskExecutor(client)})
        if "instances" in only:
            bench_instances(
                "dask", lambda: rf.DaskExecutor(client), runs, args.drivers, args.instance_steps
            )
        if "chain" not in only:
            return
        client.submit(inc, 0, pure=False).result()

        value: Any = 0
        for _ in range(steps):
            value = dask.delayed(inc)(value)
        start = time.perf_counter()
        assert value.compute(scheduler=client) == steps
        own = time.perf_counter() - start

        start = time.perf_counter()
        x = 0
        for _ in range(steps):
            x = client.submit(inc, x, pure=False).result()
        loop = time.perf_counter() - start

        emit_chain("dask", steps, runeflow_chain(rf.DaskExecutor(client), steps), own, loop)
    finally:
        client.close()
        cluster.close()


def bench_ray(n: int, runs: int, steps: int, only: set[str], args: argparse.Namespace) -> None:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=CORES, include_dashboard=False, log_to_driver=False)
    emit(case="startup", engine="ray", seconds=round(time.perf_counter() - start, 2))
    try:
        if "fanout" in only:
            bench_fanout(n, runs, {"ray": lambda: rf.RayExecutor()})
        if "instances" in only:
            bench_instances("ray", rf.RayExecutor, runs, args.drivers, args.instance_steps)
        if "chain" not in only:
            return
        remote_inc = ray.remote(inc)
        ray.get(remote_inc.remote(0))

        start = time.perf_counter()
        ref = remote_inc.remote(0)
        for _ in range(steps - 1):
            ref = remote_inc.remote(ref)
        assert ray.get(ref) == steps
        own = time.perf_counter() - start

        start = time.perf_counter()
        x = 0
        for _ in range(steps):
            x = ray.get(remote_inc.remote(x))
        loop = time.perf_counter() - start

        emit_chain("ray", steps, runeflow_chain(rf.RayExecutor(), steps), own, loop)
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one timed run, 200-step chains")
    parser.add_argument("--only", action="append", choices=CASES, help="run only these cases")
    parser.add_argument("--engine", action="append", choices=("dask", "ray"), help="only these")
    parser.add_argument("--drivers", action="append", type=int, help="instances: pool sizes")
    parser.add_argument("--instance-steps", type=int, default=3, help="instances: chain length")
    args = parser.parse_args()
    runs, steps = (1, 200) if args.quick else (3, 1000)
    only = set(args.only or CASES)
    engines = set(args.engine or ("dask", "ray"))
    n = 0
    if "fanout" in only:
        n = calibrate()
        emit(case="calibration", loops_per_element=n, cpu_count=os.cpu_count())
        bench_fanout(
            n,
            runs,
            {
                "threads": lambda: rf.runner.ThreadExecutor(FANOUT),
                "processes": lambda: rf.runner.ProcessExecutor(CORES),
            },
        )
    if "dask" in engines:
        bench_dask(n, runs, steps, only, args)
    if "ray" in engines:
        bench_ray(n, runs, steps, only, args)


if __name__ == "__main__":
    main()
