"""Dashboard benchmarks: server time per page on a store of 100,000 instances.

Run with ``python bench/ui.py`` (under the machine-wide lock: ``flock
/work/team/bench.lock python bench/ui.py``); PostgreSQL at ``RUNEFLOW_BENCH_PG_DSN``
(default ``postgresql://postgres@127.0.0.1:5432/test``) is measured too when reachable.
Prints one JSON line per figure.

The store holds ``--instances`` real instances: three runs of real workflows (idle: two
steps done; failed: a step failed, its downstream skipped; waiting: an open wait) copied
row for row, statuses interleaved (80 % idle, 10 % failed, 8 % waiting, 2 % stopped), over
three workflow names. Each figure is the time the dashboard's server takes to answer one
request (the ASGI app in process, request to last byte), median and worst of ``--repeat``:

* ``first page cold``: the instances page (50 rows, with counts per status, workflow names
  and every row's summary folded from its log) by a dashboard that has read nothing yet;
* ``first page warm``: the same page again (summaries already folded, only checked);
* ``deep page``: a page 99 % of the way down (keyset: no offset to skip);
* ``failed``, ``workflow``, ``failed + workflow``: filtered first pages;
* ``id prefix``: ids starting with a prefix 10 % of them share; ``id prefix + failed``:
  the same with a status filter (a bounded scan of at most 2,000 ids);
* ``instance cold`` / ``instance warm``: one instance's page data.

What the listing indexes (SQLite schema 5) cost SQLite writes is measured too, with and without
them in one run: instances created and given a status per second (the store alone), and
two-step instances run to the end per second through a runner.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sqlite3
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import runeflow as rf
from runeflow.stores import SQLiteStore, Store

PG_DSN = os.environ.get("RUNEFLOW_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BUDGET_MS = 300.0
LOCAL = "http://127.0.0.1:8077"
"""Where requests are addressed: a local name, as the dashboard wants without a token."""


def emit(**row: Any) -> None:
    print(json.dumps(row), flush=True)


# --- the template instances -----------------------------------------------------------------


def price(order: dict[str, Any]) -> float:
    return float(order["qty"]) * float(order["unit"])


def with_tax(amount: float) -> float:
    return round(amount * 1.2, 2)


def charge(order: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError(f"payment service down for order {order['id']}")


def ship(signal: rf.Signal) -> str:
    return f"shipped {signal.input['id']}"


def pricing() -> rf.Workflow:
    return rf.workflow(name="pricing").add(rf.step(price)).add(rf.step(with_tax), to="price")


def payment() -> rf.Workflow:
    return (
        rf.workflow(name="payment")
        .add(rf.step(lambda order: order, name="check"))
        .add(rf.step(charge), to="check")
        .add(rf.step(lambda receipt: receipt, name="receipt"), to="charge")
    )


def approval() -> rf.Workflow:
    return (
        rf.workflow(name="approval")
        .add(rf.step(lambda order: order, name="check"))
        .add(rf.await_event(name="manager", events=["approved", "rejected"]), to="check")
        .add(rf.rule(condition=lambda s: s.event == "approved", reaction=ship), to="manager")
    )


TEMPLATES = {"idle": "tpl-idle", "failed": "tpl-failed", "waiting": "tpl-waiting"}


def templates(store: Store) -> None:
    with rf.Runner(store=store, executor="inline", recover=False) as runner:
        runner.start_instance(pricing, {"qty": 3, "unit": 2.5}, id=TEMPLATES["idle"])
        runner.start_instance(payment, {"id": 7}, id=TEMPLATES["failed"])
        runner.start_instance(approval, {"id": 8}, id=TEMPLATES["waiting"])
        for wid in TEMPLATES.values():
            runner.wait(wid, timeout=30)


def plan(count: int) -> list[tuple[str, str, str, float]]:
    """``(id, template, status, created_at)`` of every copy, oldest first."""
    base = time.time() - count * 0.001 - 60
    out = []
    for i in range(count):
        slot = i % 50
        status = (
            "failed" if slot < 5 else "waiting" if slot < 9 else "stopped" if slot == 9 else "idle"
        )
        template = TEMPLATES["waiting" if status == "stopped" else status]
        out.append((f"order-{i:06d}", template, status, base + i * 0.001))
    return out


def fill_sqlite(path: Path, count: int) -> list[tuple[str, str, str, float]]:
    SQLiteStore(path).close()
    store = SQLiteStore(path)
    templates(store)
    store.close()
    rows = plan(count)
    with sqlite3.connect(path) as conn:
        columns = "definition_name, definition_hash, metadata, updated_at, error"
        found = {
            r[0]: r[1:]
            for r in conn.execute(
                f"SELECT workflow_id, {columns} FROM runeflow_instances WHERE workflow_id IN "
                "(?, ?, ?)",
                list(TEMPLATES.values()),
            )
        }
        conn.executemany(
            """INSERT INTO runeflow_instances (workflow_id, definition_name, definition_hash,
            status, created_at, updated_at, cursor, metadata, owner, epoch, lease_expires, error)
            VALUES (?, ?, ?, ?, ?, ?, 0, ?, NULL, 0, 0, ?)""",
            [
                (wid, found[t][0], found[t][1], status, at, at, found[t][2], found[t][4])
                for wid, t, status, at in rows
            ],
        )
        conn.executemany(
            """INSERT INTO runeflow_events (workflow_id, last, first, data, fact_ids, at, checksum)
            SELECT ?, last, first, data, fact_ids, at, checksum FROM runeflow_events
            WHERE workflow_id = ?""",
            [(wid, t) for wid, t, _, _ in rows],
        )
    conn.close()
    return rows


def fill_postgres(store: Any, count: int) -> list[tuple[str, str, str, float]]:
    templates(store)
    rows = plan(count)
    schema = f'"{store.schema}"'
    with store._connection() as conn, conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(
                f"""INSERT INTO {schema}.instances (workflow_id, definition_name,
                definition_hash, status, created_at, updated_at, cursor, metadata, owner, epoch,
                lease_expires, error)
                SELECT %s, definition_name, definition_hash, %s, %s, %s, cursor, metadata,
                NULL, 0, 0, error FROM {schema}.instances WHERE workflow_id = %s""",
                [(wid, status, at, at, t) for wid, t, status, at in rows],
            )
        for template in TEMPLATES.values():
            ids = [wid for wid, t, _, _ in rows if t == template]
            conn.execute(
                f"""INSERT INTO {schema}.events (workflow_id, last, first, data, fact_ids,
                checksum) SELECT u.id, e.last, e.first, e.data, e.fact_ids, e.checksum
                FROM {schema}.events e, unnest(%s::text[]) AS u (id)
                WHERE e.workflow_id = %s""",
                (ids, template),
            )
    with store._connection() as conn:  # as autovacuum leaves a table after a bulk load
        for table in ("instances", "events"):
            conn.execute(f"VACUUM ANALYZE {schema}.{table}")
    return rows


# --- measuring ------------------------------------------------------------------------------


def token(created_at: float, workflow_id: str) -> str:
    """A page key as the dashboard gives it out (see runeflow.ui.service)."""
    data = json.dumps([created_at, workflow_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), result


def measure(label: str, store: Store, rows: list[Any], repeat: int) -> list[float]:
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

    from runeflow.ui import create_app

    count = len(rows)
    deep = rows[count // 100]
    prefix = rows[count // 2][0][:8]  # "order-05": a tenth of 100,000 ids
    cases: list[tuple[str, str, bool]] = [
        ("first page cold", "/api/instances", True),
        ("first page warm", "/api/instances", False),
        ("deep page", f"/api/instances?after={token(deep[3], deep[0])}", False),
        ("failed", "/api/instances?status=failed", False),
        ("workflow", "/api/instances?workflow=approval", False),
        ("failed + workflow", "/api/instances?status=failed&workflow=payment", False),
        ("id prefix", f"/api/instances?q={prefix}", False),
        ("id prefix + failed", f"/api/instances?q={prefix}&status=failed", False),
        ("instance cold", f"/api/instances/{rows[-1][0]}", True),
        ("instance warm", f"/api/instances/{rows[-1][0]}", False),
    ]
    worst = []
    client = TestClient(create_app(store), base_url=LOCAL)

    def get(url: str, client: TestClient = client) -> Any:
        response = client.get(url)
        assert response.status_code == 200, response.text
        return response.json()

    for name, url, cold in cases:
        if cold:

            def call(url: str = url) -> Any:
                return get(url, TestClient(create_app(store), base_url=LOCAL))

            median, most, data = timed(call, repeat)
        else:
            get(url)  # warm the caches this case relies on
            median, most, data = timed(lambda url=url: get(url), repeat)
        shown = len(data.get("instances", [])) if "instances" in data else 1
        emit(
            bench="ui",
            store=label,
            instances=count,
            case=name,
            median_ms=round(median, 2),
            worst_ms=round(most, 2),
            rows=shown,
            budget_ms=BUDGET_MS,
        )
        worst.append(most)
    return worst


_LISTING_INDEXES = ("status_created", "name_status_created")


def _without_listing_indexes(path: Path) -> None:
    """Take a schema-5 SQLite store back to the indexes of schema 4."""
    with sqlite3.connect(path) as conn:
        for name in _LISTING_INDEXES:
            conn.execute(f"DROP INDEX runeflow_instances_{name}")
        conn.execute("CREATE INDEX runeflow_instances_status ON runeflow_instances (status)")
    conn.close()


def _creates(path: Path, count: int) -> float:
    store = SQLiteStore(path)
    start = time.perf_counter()
    for i in range(count):
        store.create(f"c-{i:06d}", definition_name="pricing", definition_hash="h")
        store.set_status(f"c-{i:06d}", "idle")
    rate = count / (time.perf_counter() - start)
    store.close()
    return rate


def _instances(path: Path, count: int) -> float:
    store = SQLiteStore(path)
    with rf.Runner(store=store, executor="inline", recover=False) as runner:
        start = time.perf_counter()
        for i in range(count):
            runner.start_instance(pricing, {"qty": 1, "unit": 2}, id=f"i-{i:06d}")
        for i in range(count):
            runner.wait(f"i-{i:06d}", timeout=60)
        rate = count / (time.perf_counter() - start)
    store.close()
    return rate


def index_cost(tmp: Path, count: int, rounds: int = 3) -> None:
    """What the listing indexes (SQLite schema 5) cost SQLite writes: instances created and given a
    status per second (the store alone), and two-step instances run to the end per second
    (through a runner), with and without them; each the best of ``rounds``, taking turns."""
    for case, work, n in (
        ("store create + status change, instances/s", _creates, count),
        ("runner two-step instances/s", _instances, max(count // 3, 1)),
    ):
        rates: dict[str, float] = {"with": 0.0, "without": 0.0}
        for r in range(rounds):
            for label in ("with", "without"):
                path = tmp / f"{work.__name__}-{label}-{r}.db"
                SQLiteStore(path).close()
                if label == "without":
                    _without_listing_indexes(path)
                rates[label] = max(rates[label], work(path, n))
        emit(
            bench="ui",
            store="sqlite",
            case=case,
            with_indexes=round(rates["with"]),
            without=round(rates["without"]),
            ratio=round(rates["with"] / rates["without"], 3),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--creates", type=int, default=5_000)
    args = parser.parse_args()
    worst: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ui.db"
        start = time.perf_counter()
        rows = fill_sqlite(path, args.instances)
        emit(bench="ui", store="sqlite", case="fill", seconds=round(time.perf_counter() - start, 1))
        store = SQLiteStore(path)
        worst += measure("sqlite", store, rows, args.repeat)
        store.close()
        index_cost(Path(tmp), args.creates)
    try:
        from runeflow.stores.postgres import PostgresStore

        pg: Any = PostgresStore(PG_DSN, schema=f"rf_bench_ui_{os.getpid()}", connect_timeout=3)
    except (ImportError, rf.StoreError) as exc:
        emit(bench="ui", store="postgres", skipped=str(exc))
    else:
        try:
            start = time.perf_counter()
            rows = fill_postgres(pg, args.instances)
            seconds = round(time.perf_counter() - start, 1)
            emit(bench="ui", store="postgres", case="fill", seconds=seconds)
            worst += measure("postgres", pg, rows, args.repeat)
        finally:
            with pg._connection() as conn:
                conn.execute(f'DROP SCHEMA "{pg.schema}" CASCADE')
            pg.close()
    most = round(max(worst), 2)
    emit(bench="ui", case="all pages within budget", ok=most <= BUDGET_MS, worst_ms=most)


if __name__ == "__main__":
    main()
