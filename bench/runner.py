"""Runner benchmarks. Run ``python bench/runner.py`` (``--quick`` for a short run).

Prints JSON lines; ratios are computed within the run. Cases:

* ``parallel_io``: the order pipeline with 0.20/0.30/0.15 s checks; wall time against the
  ideal (the longest check, 0.30 s), per executor.
* ``chain_runner``: a 1,000-step chain through the runner (inline executor) with the memory
  store and with SQLite checkpointing every cycle; steps/s and the runner's overhead per
  step over running the same chain inline in the model. On SQLite also with ~200-byte
  record values, which are stored by content hash (small values such as the int chain's
  live in the fact's row).
* ``instances``: 10,000 instances of a three-step workflow, inline, on the thread pool and
  on the asyncio executor (plain steps), best and median of three runs each; instances/s,
  RSS growth (first run) and peak RSS.
* ``timers``: 1,000 waiting instances whose waits time out within two seconds; mean and
  p99 lateness of firing, and RSS per waiting instance.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import runeflow as rf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import build_chain, three_step


def proc_status_mb(key: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb() -> float:
    return proc_status_mb("VmRSS")


def peak_rss_mb() -> float:
    return proc_status_mb("VmHWM")


def emit(**row: Any) -> dict[str, Any]:
    print(json.dumps(row), flush=True)
    return row


def order_pipeline(asynchronous: bool) -> rf.Workflow:
    import asyncio

    def make(name: str, seconds: float) -> rf.Step:
        if asynchronous:

            async def check(order: dict[str, Any]) -> str:
                await asyncio.sleep(seconds)
                return name
        else:

            def check(order: dict[str, Any]) -> str:
                time.sleep(seconds)
                return name

        return rf.step(check, name=name)

    validate = rf.rule(
        condition=lambda o: isinstance(o["items"], list),
        reaction=lambda o: o,
        name="validate_order",
    )
    return (
        rf.workflow(name="order_fulfillment", rules=[validate])
        .add(make("check_inventory", 0.20), to="validate_order")
        .add(make("screen_fraud", 0.30), to="validate_order")
        .add(make("estimate_shipping", 0.15), to="validate_order")
        .add(
            rf.step(lambda a, b, c: True, name="decide"),
            to=["check_inventory", "screen_fraud", "estimate_shipping"],
        )
    )


def parallel_io(trials: int) -> None:
    order = {"customer_id": "c", "items": ["a"]}
    for executor, asynchronous in (("threads", False), ("asyncio", True)):
        times = []
        with rf.Runner(executor=executor) as runner:
            for i in range(trials):
                wid = f"o{i}"
                runner.start_workflow(wid, order_pipeline(asynchronous))
                start = time.perf_counter()
                runner.run(wid, order)
                runner.wait(wid, timeout=10)
                times.append(time.perf_counter() - start)
        emit(
            case="parallel_io",
            executor=executor,
            ideal_s=0.30,
            best_s=round(min(times), 4),
            median_s=round(statistics.median(times), 4),
            ratio_to_ideal=round(statistics.median(times) / 0.30, 3),
        )


RECORD_PAYLOAD = "x" * 160
"""Makes each record chain value about 200 bytes encoded: stored by content hash."""


def build_record_chain(n: int) -> rf.Workflow:
    """A chain whose values are ~200-byte records (the int chain's values are kept inline)."""
    wf = rf.workflow(name="records")
    prev = None
    for i in range(n):
        name = f"s{i}"
        wf.add(rf.step(lambda r: {"n": r["n"] + 1, "note": RECORD_PAYLOAD}, name=name), to=prev)
        prev = name
    return wf


def chain_runner(n: int, trials: int) -> None:
    model = []
    for _ in range(trials):
        gc.collect()
        start = time.perf_counter()
        build_chain(n).react_until_satisfied(0)
        model.append(time.perf_counter() - start)
    model_us = min(model) / n * 1e6
    emit(case="chain_model_inline", n=n, best_us_per_step=round(model_us, 2))
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("memory", "int"), ("sqlite", "int"), ("sqlite", "record")]
        for label, values in cases:
            build, first = (build_chain, 0) if values == "int" else (build_record_chain, {"n": 0})
            times = []
            for t in range(trials):
                store = (
                    rf.MemoryStore()
                    if label == "memory"
                    else rf.SQLiteStore(Path(tmp) / f"chain-{values}-{t}.db")
                )
                gc.collect()
                start = time.perf_counter()
                with rf.Runner(store=store, executor="inline", recover=False) as runner:
                    runner.start_workflow("chain", build(n))
                    runner.run("chain", first)
                    runner.wait("chain")
                    [last] = runner.get_results("chain", components=[f"s{n - 1}"]).values()
                    assert last == (n if values == "int" else {"n": n, "note": RECORD_PAYLOAD})
                times.append(time.perf_counter() - start)
            best = min(times)
            emit(
                case="chain_runner",
                store=label,
                values=values,
                n=n,
                checkpoint="every_cycle",
                synchronous="NORMAL" if label == "sqlite" else None,
                best_steps_per_s=round(n / best),
                median_steps_per_s=round(n / statistics.median(times)),
                best_us_per_step=round(best / n * 1e6, 2),
                runner_overhead_us_per_step=round(best / n * 1e6 - model_us, 2),
            )


def instances(n: int, trials: int = 3) -> None:
    definition = three_step()
    for executor in ("inline", "threads", "asyncio"):
        rates = []
        for trial in range(trials):
            gc.collect()
            before = rss_mb()
            start = time.perf_counter()
            with rf.Runner(executor=executor, recover=False) as runner:
                for i in range(n):
                    runner.start_instance(definition, i, id=f"i{i}")
                for i in range(n):
                    runner.wait(f"i{i}")
                rates.append(n / (time.perf_counter() - start))
                assert runner.get_results(f"i{n - 1}") == [n, 2 * n, 2 * n - 1]
                if trial == 0:
                    growth = rss_mb() - before
        memory = (  # later runs reuse memory the first one freed: only it shows growth
            {"rss_growth_mb": round(growth, 1), "kb_per_instance": round(growth * 1024 / n, 2)}
            if executor == "inline"
            else {}
        )
        emit(
            case="instances",
            n=n,
            executor=executor,
            store="memory",
            best_instances_per_s=round(max(rates)),
            median_instances_per_s=round(statistics.median(rates)),
            **memory,
            peak_rss_mb=peak_rss_mb(),
        )


def timers(n: int) -> None:
    import tracemalloc

    rng = random.Random(7)

    def waiting(timeout: float) -> rf.Workflow:
        return (
            rf.workflow(name="waiting")
            .add(rf.await_event(name="approval", events=["ok"], timeout=timeout))
            .add(rf.step(lambda s: s.event, name="outcome"), to="approval")
        )

    definitions = [waiting(round(1.0 + i / 100, 2)) for i in range(100)]
    gc.collect()
    tracemalloc.start()
    with rf.Runner(recover=False) as runner:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            runner.start_instance(definitions[rng.randrange(100)], i, id=f"t{i}")
        parked = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        waiting_now = len(runner.list_workflows(status="waiting"))
        deadline = time.monotonic() + 30
        while len(runner.timer_lateness()) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        late = sorted(runner.timer_lateness())
    p99 = late[max(int(len(late) * 0.99) - 1, 0)]
    emit(
        case="timers",
        waiting_instances=n,
        waiting_when_parked=waiting_now,
        fired=len(late),
        mean_lateness_ms=round(statistics.mean(late) * 1000, 2),
        p99_lateness_ms=round(p99 * 1000, 2),
        max_lateness_ms=round(late[-1] * 1000, 2),
        heap_kb_per_waiting_instance=round((parked - base) / 1024 / n, 2),
        store="memory",
        note="heap measured with tracemalloc (Python allocations)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    trials = 3 if args.quick else 5
    emit(case="env", python=sys.version.split()[0], cpus=os.cpu_count())
    parallel_io(trials)
    chain_runner(1000, trials)
    instances(2000 if args.quick else 10_000)
    timers(200 if args.quick else 1000)


if __name__ == "__main__":
    main()
