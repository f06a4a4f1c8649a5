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
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import runeflow as rf

WORK_SECONDS = 0.25
FANOUT = 8
CORES = 2


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


def bench_dask(n: int, runs: int, steps: int) -> None:
    import dask
    import distributed

    start = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=CORES, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster, set_as_default=False)
    emit(case="startup", engine="dask", seconds=round(time.perf_counter() - start, 2))
    try:
        bench_fanout(n, runs, {"dask": lambda: rf.DaskExecutor(client)})
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


def bench_ray(n: int, runs: int, steps: int) -> None:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=CORES, include_dashboard=False, log_to_driver=False)
    emit(case="startup", engine="ray", seconds=round(time.perf_counter() - start, 2))
    try:
        bench_fanout(n, runs, {"ray": lambda: rf.RayExecutor()})
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
    args = parser.parse_args()
    runs, steps = (1, 200) if args.quick else (3, 1000)
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
    bench_dask(n, runs, steps)
    bench_ray(n, runs, steps)


if __name__ == "__main__":
    main()
