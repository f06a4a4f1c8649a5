"""Store benchmarks; prints one JSON line per figure.

Run with ``python bench/stores.py`` (PostgreSQL at ``RUNEFLOW_BENCH_PG_DSN``, default
``postgresql://postgres@127.0.0.1:5432/test``; skipped with a note when unreachable).

* appends/s: one append per cycle of three realistic events (runnable dispatched, fact
  produced, runnable completed), 10k cycles by default;
* events/s: the same log streamed and decoded, with and without fact values;
* dedupe: facts written versus distinct contents stored (values whose encoding is at most
  64 bytes live in the fact's row and are not counted as contents);
* workflow: a real 10k-step chain driven one append per cycle (appends/s), then replayed:
  stream + decode (with and without values) and stream + decode + fold (``from_events``);
* recovery memory: peak and retained memory (tracemalloc) of full, hybrid and lazy
  recovery of a workflow holding 100k facts (~200-byte dict values), from the log and from
  a snapshot, on SQLite, with ratios to full recovery.

Figures vary on a shared machine: each is the best of ``--repeat`` runs. ``--only`` runs
some of the benchmarks (``store``, ``workflow``, ``recovery``; repeatable), e.g. ``--only
workflow --repeat 7`` for the replay figures alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import runeflow as rf
from runeflow.model.events import Event, FactProduced, RunnableCompleted, RunnableDispatched
from runeflow.model.facts import Fact
from runeflow.recovery import load_workflow, save_snapshot
from runeflow.stores import MemoryStore, SQLiteStore, Store

PG_DSN = os.environ.get("RUNEFLOW_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def cycle(i: int, distinct: int) -> list[Event]:
    """One dispatch cycle; fact values repeat every ``distinct`` cycles."""
    rid = uuid.UUID(int=i).hex
    value = {"order_id": i % distinct, "total": 125.5, "items": ["sku-1", "sku-2"], "ok": True}
    fact = Fact(f"{rid}:0", value, "price", "9f" * 16, (uuid.UUID(int=i + 1).hex,), ("in-1",))
    return [
        RunnableDispatched(runnable_id=rid, component="price"),
        FactProduced(fact=fact, runnable_id=rid),
        RunnableCompleted(runnable_id=rid, component="price", duration=0.0021),
    ]


def report(**fields: Any) -> None:
    """Print one JSON line."""
    print(json.dumps(fields), flush=True)


def timed(work: Callable[[], int]) -> tuple[int, float]:
    """Run ``work`` and return its count and the seconds it took."""
    start = time.perf_counter()
    count = work()
    return count, time.perf_counter() - start


def bench_store(name: str, store: Store, cycles: int) -> None:
    """Append ``cycles`` cycles, then stream them back."""
    workflow_id = f"bench-{uuid.uuid4().hex[:8]}"
    store.create(workflow_id, definition_name="bench", definition_hash="h")
    batches = [cycle(i, distinct=100) for i in range(cycles)]
    before = store.stats()

    def append_all() -> int:
        for events in batches:
            store.append(workflow_id, events)
        return len(batches)

    count, seconds = timed(append_all)
    report(store=name, metric="appends_per_s", value=round(count / seconds), cycles=count)
    batches.clear()  # a recovering process does not hold the events it is about to read
    gc.collect()
    for values in (True, False):
        events, seconds = timed(
            lambda v=values: sum(1 for _ in store.stream(workflow_id, values=v))
        )
        report(
            store=name,
            metric="events_streamed_per_s",
            values=values,
            value=round(events / seconds),
            events=events,
        )
    after = store.stats()
    report(
        store=name,
        metric="dedupe",
        facts=after["facts"] - before["facts"],
        contents=after["contents"] - before["contents"],
    )


def increment(x: int) -> int:
    """One step of the chain."""
    return x + 1


def chain(steps: int) -> rf.Workflow:
    """A chain of ``steps`` steps, each fed by the previous one."""
    wf = rf.workflow(name=f"chain{steps}")
    parent = None
    for i in range(steps):
        wf.add(rf.step(increment, name=f"s{i}"), to=parent)
        parent = f"s{i}"
    return wf


def bench_workflow(name: str, store: Store, definition: rf.Workflow, repeat: int) -> None:
    """Drive ``definition`` one append per cycle, then replay its log."""
    workflow_id = f"chain-{uuid.uuid4().hex[:8]}"
    wf = definition.fresh()
    store.create(workflow_id, definition_name=wf.name, definition_hash=wf.definition_hash())
    wf.plan_eagerly(0)
    store.append(workflow_id, wf.uncommitted_events())  # the build events and the input

    in_store = 0.0

    def drive() -> int:
        nonlocal in_store
        cycles = 0
        while wf.is_runnable():
            for runnable in wf.prepare_for_dispatch():
                wf.apply_runnable(runnable.execute())
            wf.plan_eagerly()
            events = wf.uncommitted_events()
            start = time.perf_counter()
            store.append(workflow_id, events)
            in_store += time.perf_counter() - start
            wf.forget_committed()
            cycles += 1
        return cycles

    cycles, seconds = timed(drive)
    report(
        store=name,
        metric="workflow_cycles_per_s",
        value=round(cycles / seconds),
        note="whole cycle: prepare, execute, apply, append",
    )
    report(
        store=name,
        metric="workflow_appends_per_s",
        value=round(cycles / in_store),
        cycles=cycles,
        events_per_append=3,
    )
    gc.collect()
    for values in (False, True):
        best = 0.0
        for _ in range(repeat):
            events, seconds = timed(
                lambda v=values: sum(1 for _ in store.stream(workflow_id, values=v))
            )
            best = max(best, events / seconds)
        report(
            store=name,
            metric="replay_stream_decode_per_s",
            values=values,
            value=round(best),
            events=events,
        )
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        rebuilt = rf.Workflow.from_events(store.stream(workflow_id), definition=definition)
        best = max(best, events / (time.perf_counter() - start))
    assert rebuilt.results() == wf.results()
    report(
        store=name,
        metric="replay_stream_decode_fold_per_s",
        values=True,
        value=round(best),
        events=events,
    )


def wide_workflow() -> rf.Workflow:
    """Fan 100k orders out, enrich each, gather them back."""
    return (
        rf.workflow(name="wide", outputs={"count": "count"})
        .add(rf.step(make_orders, name="orders"))
        .add(rf.map(enrich, name="enrich"), to="orders")
        .add(rf.reduce(tally, 0, map="enrich", name="count"))
    )


def make_orders(n: int) -> list[dict[str, Any]]:
    """``n`` orders of about 200 bytes each."""
    return [
        {
            "id": i,
            "customer": f"customer-{i:08d}",
            "items": [f"sku-{i % 97:04d}", "sku-0001"],
            "note": "x" * 60,
            "total": i * 1.25,
        }
        for i in range(n)
    ]


def enrich(order: dict[str, Any]) -> dict[str, Any]:
    """One map element's work."""
    return {**order, "checked": True}


def tally(order: dict[str, Any], count: int) -> int:
    """Count the gathered orders."""
    return count + 1


def bench_recovery_memory(store: Store, facts: int) -> None:
    """Memory of full, hybrid and lazy recovery of a workflow holding ``facts`` facts."""
    wid = f"wide-{uuid.uuid4().hex[:8]}"
    definition = wide_workflow()
    wf = definition.fresh().react_until_satisfied(facts)
    store.create(wid, definition_name=wf.name, definition_hash=wf.definition_hash())
    store.append(wid, wf.uncommitted_events())
    expected = wf.results()
    held = len(wf.facts())
    del wf
    gc.collect()
    for source in ("log", "snapshot"):
        if source == "snapshot":
            save_snapshot(store, wid, load_workflow(store, wid, definition, rehydration="lazy"))
        peaks: dict[str, int] = {}
        for mode in ("full", "hybrid", "lazy"):
            gc.collect()
            tracemalloc.start()
            start = time.perf_counter()
            loaded = load_workflow(store, wid, definition, rehydration=mode)  # type: ignore[arg-type]
            seconds = time.perf_counter() - start
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert loaded.results() == expected
            peaks[mode] = peak
            report(
                store="sqlite",
                metric="recovery_memory",
                source=source,
                mode=mode,
                facts=held,
                peak_mb=round(peak / 2**20, 1),
                retained_mb=round(current / 2**20, 1),
                seconds=round(seconds, 2),
                peak_ratio_to_full=round(peak / peaks["full"], 3),
            )
            del loaded


def open_postgres() -> Store | None:
    """A Postgres store in a throwaway schema, or ``None`` when unavailable."""
    try:
        from runeflow.stores.postgres import PostgresStore

        return PostgresStore(PG_DSN, schema=f"rf_bench_{uuid.uuid4().hex[:8]}")
    except Exception as exc:  # any failure: report it and go on with the other stores
        report(store="postgres", skipped=f"{type(exc).__name__}: {exc}")
        return None


def drop_schema(store: Store) -> None:
    """Remove the benchmark schema."""
    with store._connection() as conn:  # type: ignore[attr-defined]
        conn.execute(f'DROP SCHEMA "{store.schema}" CASCADE')  # type: ignore[attr-defined]


def main() -> None:
    """Run every benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--only", action="append", choices=["store", "workflow", "recovery"], default=None
    )
    args = parser.parse_args()
    only = set(args.only or ["store", "workflow", "recovery"])
    definition = chain(args.steps)
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "bench.db") as store:
        if "store" in only:
            bench_store("sqlite", store, args.cycles)
        if "workflow" in only:
            bench_workflow("sqlite", store, definition, args.repeat)
        if "recovery" in only:
            bench_recovery_memory(store, args.facts)
    if "store" in only:
        bench_store("memory", MemoryStore(), args.cycles)
    pg = open_postgres() if only & {"store", "workflow"} else None
    if pg is not None:
        try:
            if "store" in only:
                bench_store("postgres", pg, args.cycles)
            if "workflow" in only:
                bench_workflow("postgres", pg, definition, args.repeat)
        finally:
            drop_schema(pg)
            pg.close()


if __name__ == "__main__":
    main()
