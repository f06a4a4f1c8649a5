"""Bounded-store benchmarks; prints one JSON line per figure.

Run with ``python bench/retention.py`` (``--quick``: 10,000 inputs and 500 instances;
PostgreSQL at ``RUNEFLOW_BENCH_PG_DSN``, default ``postgresql://postgres@127.0.0.1:5432/test``,
skipped with a note when unreachable).

* **size and recovery**: 100,000 inputs fed one by one (``runner.run``) to one state machine
  on SQLite, three ways: the whole log (no snapshots), snapshots only
  (``snapshot_every=20000`` events, about 4,000 inputs; ``--every``), snapshots with
  compaction (``compact=True``). For each: inputs/s
  while feeding, the events and snapshots kept (``store.stats()``), the bytes of live
  database pages (the file keeps freed pages for reuse, so its size is given too, and after
  ``VACUUM``), and the seconds a new store object takes to rebuild the instance
  (``load_workflow``, best of three; ``full`` rehydration fetches all 200,000 values,
  ``hybrid`` only those the instance still needs).
* **prune**: finished instances (a few cycles each, one value of ~200 bytes of their own and
  one shared by all) deleted by ``prune_store`` in batches of 100, on SQLite and PostgreSQL:
  instances/s, and that the values only they held are gone while the shared one stays.
* **append cost of the schema**: appends/s on SQLite of cycles whose value is kept by hash,
  with the index on fact hashes that collection needs, and without it (before/after).

Figures vary on a shared machine; ratios are computed within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import runeflow as rf
from runeflow.model.events import Event, FactProduced, RunnableCompleted, RunnableDispatched
from runeflow.model.facts import Fact
from runeflow.recovery import load_workflow
from runeflow.runner.retention import prune_store
from runeflow.stores import Store

PG_DSN = os.environ.get("RUNEFLOW_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def report(**fields: Any) -> None:
    """Print one JSON line."""
    print(json.dumps(fields), flush=True)


def meter() -> rf.Workflow:
    """A state machine: a count and a running total of its inputs."""
    return rf.workflow(name="meter").add(
        rf.state_machine(
            init=lambda: {"n": 0, "total": 0},
            reducer=lambda v, s: {"n": s["n"] + 1, "total": s["total"] + v},
            name="meter",
        )
    )


def live_bytes(path: Path) -> int:
    """Bytes of the database's pages in use (free pages excluded)."""
    with sqlite3.connect(path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    return int((pages - free) * size)


def vacuumed_bytes(path: Path) -> int:
    """The file's size after ``VACUUM`` (and a WAL checkpoint)."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
    conn.close()
    return path.stat().st_size


def best_of(times: int, work: Callable[[], Any]) -> float:
    """The least seconds ``work`` took in ``times`` runs."""
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def bench_size_and_recovery(inputs: int, every: int, workdir: Path) -> None:
    """Feed ``inputs`` to one state machine three ways; report size and recovery time."""
    results: dict[str, dict[str, Any]] = {}
    for mode, options in (
        ("whole_log", {}),
        ("snapshots", {"snapshot_every": every}),
        ("compacted", {"snapshot_every": every, "compact": True}),
    ):
        path = workdir / f"meter-{mode}.db"
        store = rf.SQLiteStore(path)
        with rf.Runner(store=store, workflows=[meter], executor="inline", **options) as runner:
            runner.start_workflow("m", meter)
            start = time.perf_counter()
            for i in range(inputs):
                runner.run("m", i)
            feeding = time.perf_counter() - start
            state = runner.get_workflow("m").state_of("meter")
        assert state == {"n": inputs, "total": inputs * (inputs - 1) // 2}
        stats = store.stats()
        store.close()

        def recover(path: Path = path, rehydration: Any = "full") -> None:
            with rf.SQLiteStore(path) as fresh:
                wf = load_workflow(fresh, "m", meter, rehydration=rehydration)
                assert wf.state_of("meter")["n"] == inputs

        recovery = best_of(3, recover)
        hybrid = best_of(3, lambda: recover(rehydration="hybrid"))
        row = {
            "inputs": inputs,
            "snapshot_every": options.get("snapshot_every"),
            "inputs_per_s": round(inputs / feeding),
            "events_kept": stats["events"],
            "snapshots": stats["snapshots"],
            "facts": stats["facts"],
            "live_bytes": live_bytes(path),
            "file_bytes": path.stat().st_size,
            "vacuumed_bytes": vacuumed_bytes(path),
            "recovery_s": round(recovery, 3),
            "recovery_hybrid_s": round(hybrid, 3),
        }
        results[mode] = row
        report(bench="size_and_recovery", store="sqlite", mode=mode, **row)
    whole, compacted = results["whole_log"], results["compacted"]
    report(
        bench="size_and_recovery_ratios",
        store="sqlite",
        vacuumed_bytes_compacted_to_whole=round(
            compacted["vacuumed_bytes"] / whole["vacuumed_bytes"], 3
        ),
        events_compacted_to_whole=round(compacted["events_kept"] / whole["events_kept"], 4),
        recovery_compacted_to_whole=round(compacted["recovery_s"] / whole["recovery_s"], 3),
        recovery_hybrid_compacted_to_whole=round(
            compacted["recovery_hybrid_s"] / whole["recovery_hybrid_s"], 3
        ),
        feeding_time_compacted_to_whole=round(whole["inputs_per_s"] / compacted["inputs_per_s"], 3),
    )


def cycle(tag: str, value: Any) -> list[Event]:
    """Dispatched, produced (``value``), completed."""
    rid = f"{tag}-{uuid.uuid4().hex[:8]}"
    fact = Fact(f"f-{rid}", value, "step", "h" * 32, (), (f"f-{rid}",))
    return [
        RunnableDispatched(runnable_id=rid, component="step"),
        FactProduced(fact=fact, runnable_id=rid),
        RunnableCompleted(runnable_id=rid, component="step", duration=0.001),
    ]


def fill(store: Store, count: int) -> None:
    """``count`` finished instances: 4 cycles each, one value of their own, one shared."""
    shared = {"catalog": "c" * 200}
    for i in range(count):
        wid = f"done-{i:06d}"
        store.create(wid, definition_name="bench", definition_hash="h", status="idle")
        own = {"order": i, "note": "n" * 200}
        events = [*cycle("a", own), *cycle("b", shared), *cycle("c", i), *cycle("d", "ok")]
        store.append(wid, events)


def bench_prune(name: str, store: Store, count: int) -> None:
    """Prune ``count`` finished instances; report instances/s and what was collected."""
    fill(store, count)
    before = store.stats()
    start = time.perf_counter()
    pruned = prune_store(store, time.time() + 1)
    seconds = time.perf_counter() - start
    after = store.stats()
    assert len(pruned) == count and after["instances"] == before["instances"] - count
    report(
        bench="prune",
        store=name,
        instances=count,
        instances_per_s=round(count / seconds),
        contents_before=before["contents"],
        contents_after=after["contents"],
        facts_after=after["facts"],
    )


def bench_append_cost(cycles: int, workdir: Path) -> None:
    """Appends/s with values kept by hash, with and without the index on fact hashes."""
    rates: dict[str, float] = {}
    for attempt in range(3):
        for indexed in (True, False):
            path = workdir / f"append-{indexed}-{attempt}.db"
            store = rf.SQLiteStore(path)
            if not indexed:
                with sqlite3.connect(path) as conn:
                    conn.execute("DROP INDEX runeflow_facts_hash")
                conn.close()
            store.create("a", definition_name="bench", definition_hash="h")
            batches = [cycle("x", {"order": i % 100, "note": "n" * 80}) for i in range(cycles)]
            start = time.perf_counter()
            for events in batches:
                store.append("a", events)
            rate = cycles / (time.perf_counter() - start)
            key = "with_hash_index" if indexed else "without_hash_index"
            rates[key] = max(rates.get(key, 0.0), rate)
            store.close()
    report(
        bench="append_cost",
        store="sqlite",
        cycles=cycles,
        **{k: round(v) for k, v in rates.items()},
        ratio=round(rates["with_hash_index"] / rates["without_hash_index"], 3),
    )


def postgres_store() -> Store | None:
    """A PostgresStore in a fresh schema, or ``None`` (with a note) when unreachable."""
    try:
        from runeflow.stores.postgres import PostgresStore

        return PostgresStore(PG_DSN, schema=f"rf_bench_{uuid.uuid4().hex[:8]}")
    except (ImportError, rf.StoreError) as exc:
        report(bench="prune", store="postgres", skipped=str(exc))
        return None


def drop_schema(store: Store) -> None:
    """Drop a benchmark's PostgreSQL schema."""
    with store._connection() as conn:  # type: ignore[attr-defined]
        conn.execute(f'DROP SCHEMA "{store.schema}" CASCADE')  # type: ignore[attr-defined]
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 inputs, 500 instances")
    parser.add_argument(
        "--every", type=int, default=None, help="snapshot_every (default: inputs / 5 events)"
    )
    args = parser.parse_args()
    inputs = 10_000 if args.quick else 100_000
    instances = 500 if args.quick else 5_000
    every = args.every or inputs // 5
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bench_size_and_recovery(inputs, every=every, workdir=workdir)
        bench_prune("sqlite", rf.SQLiteStore(workdir / "prune.db"), instances)
        pg = postgres_store()
        if pg is not None:
            try:
                bench_prune("postgres", pg, instances)
            finally:
                drop_schema(pg)
        bench_append_cost(2_000 if args.quick else 10_000, workdir)


if __name__ == "__main__":
    main()
