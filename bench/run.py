"""Engine benchmarks: per-step overhead of the model, inline, workflow construction included.

Run ``python bench/run.py`` (``--quick`` for a short run). Each line of output is a JSON
object: the case, its size, the best and median per-step (or per-instance) figures over
several trials, and ratios computed within this run. Nothing here asserts a time limit.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import runeflow as rf


def build_chain(n: int) -> rf.Workflow:
    wf = rf.workflow(name="chain")
    prev = None
    for i in range(n):
        name = f"s{i}"
        wf.add(rf.step(lambda x: x + 1, name=name), to=prev)
        prev = name
    return wf


def chain(n: int) -> None:
    wf = build_chain(n).react_until_satisfied(0)
    assert wf.raw_productions(f"s{n - 1}") == [n]


def fan_out_join(n: int) -> None:
    wf = rf.workflow(name="fan")
    names = [f"s{i}" for i in range(n)]
    for name in names:
        wf.add(rf.step(lambda x: x + 1, name=name))
    wf.add(rf.step(lambda *xs: sum(xs), name="join"), to=names)
    wf.react_until_satisfied(0)
    assert wf.raw_productions("join") == [n]


def three_step() -> rf.Workflow:
    return (
        rf.workflow(name="pipeline")
        .add(rf.step(lambda x: x + 1, name="a"))
        .add(rf.step(lambda x: x * 2, name="b"), to="a")
        .add(rf.step(lambda x: x - 1, name="c"), to="b")
    )


def instances(n: int) -> None:
    definition = three_step()
    for i in range(n):
        wf = definition.fresh().react_until_satisfied(i)
    assert wf.raw_productions("c") == [(n - 1 + 1) * 2 - 1]


def measure(fn: Callable[[int], None], n: int, trials: int) -> list[float]:
    times = []
    for _ in range(trials):
        gc.collect()
        start = time.perf_counter()
        fn(n)
        times.append(time.perf_counter() - start)
    return times


def report(case: str, n: int, times: list[float], unit: str, **extra: Any) -> dict[str, Any]:
    best, median = min(times), statistics.median(times)
    row: dict[str, Any] = {"case": case, "n": n, "trials": len(times)}
    if unit == "us_per_step":
        row.update(
            best_us_per_step=round(best / n * 1e6, 3), median_us_per_step=round(median / n * 1e6, 3)
        )
    else:
        row.update(best_per_s=round(n / best), median_per_s=round(n / median))
    row.update(extra)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer trials, smaller sizes")
    args = parser.parse_args()
    trials = 3 if args.quick else 7
    big = 20_000 if args.quick else 100_000
    print(
        json.dumps(
            {
                "case": "env",
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "runeflow": rf.__version__,
            }
        )
    )
    c1k = report("chain", 1000, measure(chain, 1000, trials), "us_per_step")
    report("fan_out_join", 1000, measure(fan_out_join, 1000, trials), "us_per_step")
    report("instances_3_step", 10_000, measure(instances, 10_000, max(trials // 2, 2)), "per_s")
    cbig = report("chain", big, measure(chain, big, max(trials // 3, 2)), "us_per_step")
    print(
        json.dumps(
            {
                "case": "chain_scaling",
                "ratio_big_to_1k": round(cbig["median_us_per_step"] / c1k["median_us_per_step"], 3),
                "sizes": [1000, big],
            }
        )
    )


if __name__ == "__main__":
    main()
