"""Store benchmarks; prints one JSON line per figure.

Run with ``python bench/stores.py`` (PostgreSQL at ``RUNEFLOW_BENCH_PG_DSN``, default
``postgresql://postgres@127.0.0.1:5432/test``; skipped with a note when unreachable).

* appends/s: one append per cycle of three realistic events (runnable dispatched, fact
  produced, runnable completed), 10k cycles by default;
* events/s: the same log streamed and decoded, with and without fact values;
* dedupe: facts written versus distinct contents stored.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runeflow.model.events import Event, FactProduced, RunnableCompleted, RunnableDispatched
from runeflow.model.facts import Fact
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "bench.db") as store:
        bench_store("sqlite", store, args.cycles)
    bench_store("memory", MemoryStore(), args.cycles)
    pg = open_postgres()
    if pg is not None:
        try:
            bench_store("postgres", pg, args.cycles)
        finally:
            drop_schema(pg)
            pg.close()


if __name__ == "__main__":
    main()
