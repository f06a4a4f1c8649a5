"""Bounded stores: snapshots that compact the log, exact recovery from a compacted log, what
reads a compacted instance (Client, CLI), and pruning finished instances (runner, background
retention, ``runeflow prune``)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf
from conftest import ALL_STORES, PG_DSN
from runeflow.cli import main
from runeflow.errors import WorkflowNotFoundError
from runeflow.model import events as ev
from runeflow.recovery import load_workflow, save_snapshot
from runeflow.stores import Store
from runeflow.stores.base import INLINE_VALUE_LIMIT, Timer
from test_model_events import rich_workflow, state_signature

BIG = "v" * (INLINE_VALUE_LIMIT * 2)


def meter() -> rf.Workflow:
    """A state machine fed one number per input, with a reactor every 1,000 inputs."""
    return rf.workflow(name="meter").add(
        rf.state_machine(
            init=lambda: {"n": 0, "total": 0},
            reducer=lambda v, s: {"n": s["n"] + 1, "total": s["total"] + v},
            reactors=[
                rf.rule(
                    condition=lambda s: s["n"] % 1000 == 0,
                    reaction=lambda s: ("milestone", s["n"]),
                    name="milestone",
                )
            ],
            name="meter",
        )
    )


def reopen(store: Store, tmp_path: Path) -> Store:
    """The same data through a new store object (a new process would open it so)."""
    if isinstance(store, rf.SQLiteStore):
        return rf.SQLiteStore(store.path)
    if isinstance(store, rf.MemoryStore):
        return store
    from conftest import PG_DSN
    from runeflow.stores.postgres import PostgresStore

    return PostgresStore(PG_DSN, schema=store.schema)  # type: ignore[attr-defined]


# --- compaction ---------------------------------------------------------------------------


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_5000_inputs_keep_a_snapshot_and_a_short_log_and_recover_exactly(
    store: Store, tmp_path: Path
) -> None:
    with rf.Runner(
        store=store, workflows=[meter], executor="inline", snapshot_every=500, compact=True
    ) as runner:
        runner.start_workflow("m", meter)
        for i in range(5000):
            runner.run("m", i)
        runner.wait("m", timeout=30)
        live = runner.get_workflow("m")
        expected = state_signature(live)
        cursor = store.cursor("m")
    stats = store.stats()
    assert stats["snapshots"] == 1
    assert 0 < stats["events"] <= 500 + 10  # under 500 past the snapshot, plus a checkpoint
    meta = store.get("m")
    assert meta.cursor == cursor > 25_000 and meta.compacted > cursor - 510
    again = reopen(store, tmp_path)
    with rf.Runner(store=again, workflows=[meter], executor="inline") as runner:
        wf = runner.get_workflow("m")
        assert state_signature(wf) == expected
        assert wf.state_of("meter") == {"n": 5000, "total": sum(range(5000))}
        milestones = runner.get_results("m", ["milestone"], all=True)
        assert milestones == {"milestone": [("milestone", n) for n in range(1000, 5001, 1000)]}
        runner.run("m", 5000)  # and it goes on
        runner.wait("m", timeout=10)
        assert runner.get_workflow("m").state_of("meter")["n"] == 5001
    assert again.cursor("m") > cursor


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_recovery_from_a_compacted_log_equals_the_live_workflow(store: Store) -> None:
    """Pending work, in-flight runnables, joins, reduces, accumulators, waits, timers and
    failures: at every point, snapshot + compaction + tail rebuilds the live state."""
    wf = rich_workflow()
    store.create("r", definition_name=wf.name, definition_hash=wf.definition_hash())
    inputs = [{"items": [1, 2, 3], "n": 4}, {"items": [5], "n": 1}, {"items": [], "n": 2}]
    compactions, timed, delivered = 0, None, False
    held: list[rf.Runnable] = []  # prepared, not applied yet: in flight
    for step in range(30):
        if step % 6 == 0 and inputs:
            wf.plan_eagerly(inputs.pop(0))
        if timed is None and step >= 8 and wf.open_waits():
            timed = step
            wf.record(ev.TimerScheduled("t-1", wf.open_waits()[0].id, "approval", 12.0))
        elif timed is not None and step == timed + 3:
            wf.deliver_event("yes", wait_id=wf.open_waits()[0].id)
            delivered = True
        held += wf.prepare_for_dispatch()
        for _ in range(min(len(held), 1 + step % 2)):  # leave some in flight
            wf.apply_runnable(rf.execute_runnable(held.pop(0)))
        wf.plan_eagerly()
        store.append("r", wf.uncommitted_events())
        if step % 3 == 0:
            save_snapshot(store, "r", wf)
            compactions += store.compact("r") > 0
        for mode in ("full", "hybrid", "lazy"):
            loaded = load_workflow(store, "r", rich_workflow, rehydration=mode)
            if mode == "full":
                assert state_signature(loaded) == state_signature(wf), f"step {step}"
            assert sorted(loaded._pending) == sorted(wf._pending)
            assert sorted(loaded._in_flight) == sorted(wf._in_flight)
    assert compactions >= 4 and store.get("r").compacted > 0 and delivered
    loaded = load_workflow(store, "r", rich_workflow)
    for w in (wf, loaded):
        w.requeue_in_flight()
        w.react_until_satisfied()
        w.deliver_event("no", step="approval")
        w.react_until_satisfied()
    assert loaded.results(all=True) == wf.results(all=True)


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_a_compacted_log_is_never_folded_from_its_start(store: Store) -> None:
    with rf.Runner(
        store=store, workflows=[meter], executor="inline", snapshot_every=20, compact=True
    ) as runner:
        runner.start_instance(meter, 1, id="c")
        for i in range(30):
            runner.run("c", i)
    start = store.get("c").compacted
    assert start > 0
    with pytest.raises(rf.StoreError, match="use_snapshot=True") as info:
        load_workflow(store, "c", meter, use_snapshot=False)
    assert info.value.workflow_id == "c" and f"events 1-{start} were compacted" in str(info.value)
    with pytest.raises(rf.StoreError, match="compacted"):
        list(store.stream("c"))
    cursor, _ = store.load_snapshot("c") or (0, b"")
    store.save_snapshot("c", cursor, b'{"format": 2, "workflow"')  # damaged
    with pytest.raises(rf.StoreError, match="cannot be rebuilt without it") as info:
        load_workflow(store, "c", meter)
    assert "use_snapshot=False" not in str(info.value).split("), and")[-1]


def test_a_runner_without_snapshot_every_writes_no_snapshot(tmp_path: Path) -> None:
    store = rf.SQLiteStore(tmp_path / "plain.db")
    with rf.Runner(store=store, workflows=[meter], executor="inline") as runner:
        assert runner.snapshots is None
        runner.start_instance(meter, 1, id="p")
        for i in range(300):
            runner.run("p", i)
    assert store.stats()["snapshots"] == 0 and store.get("p").compacted == 0


def test_snapshots_without_compaction_keep_the_whole_log(tmp_path: Path) -> None:
    store = rf.SQLiteStore(tmp_path / "full.db")
    with rf.Runner(store=store, workflows=[meter], executor="inline", snapshot_every=50) as r:
        r.start_instance(meter, 0, id="k")
        for i in range(100):
            r.run("k", i)
        cursor = store.cursor("k")
    assert store.stats()["events"] == cursor and store.stats()["snapshots"] == 1
    snapshot_at, _ = store.load_snapshot("k") or (0, b"")
    assert cursor - 50 < snapshot_at <= cursor
    whole = load_workflow(store, "k", meter, use_snapshot=False)
    assert state_signature(load_workflow(store, "k", meter)) == state_signature(whole)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"compact": True}, "compact=True needs snapshot_every"),
        ({"snapshot_every": 0}, "snapshot_every"),
        ({"snapshot_every": 2.5}, "snapshot_every"),
        ({"retention": -1}, "retention"),
        ({"retention": "7d"}, "retention"),
    ],
)
def test_bad_retention_options_are_usage_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(rf.UsageError, match=message):
        rf.Runner(**options)


def test_a_snapshot_by_a_runner_that_lost_the_lease_is_refused(tmp_path: Path) -> None:
    store = rf.SQLiteStore(tmp_path / "fenced.db")
    with rf.Runner(
        store=store, workflows=[meter], executor="inline", snapshot_every=10, compact=True
    ) as runner:
        runner.start_instance(meter, 1, id="f")
        worker = runner._workers["f"]
        store.release_lease("f", runner.owner)
        assert store.acquire_lease("f", "someone-else", 60) == 2  # taken over
        before = (store.load_snapshot("f"), store.stats()["events"])
        assert runner.snapshots is not None
        assert runner.snapshots.snapshot(worker) == 0  # refused, logged, nothing written
        assert (store.load_snapshot("f"), store.stats()["events"]) == before


# --- reading a compacted instance without its code ----------------------------------------


def approval() -> rf.Workflow:
    return (
        rf.workflow(name="approval", outputs={"decision": "decide"})
        .add(rf.accumulator(lambda x, acc: acc + x, init=0, name="sum"))
        .add(rf.await_event(name="manager", events=["approved", "rejected"]), to="sum")
        .add(rf.step(lambda s: (s.event, s.input), name="decide"), to="manager")
        .add(rf.step(lambda x: 1 // 0, name="broken"), to="sum")
    )


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_client_and_cli_read_a_compacted_waiting_instance(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with rf.Runner(
        store=store, workflows=[approval], executor="inline", snapshot_every=8, compact=True
    ) as runner:
        runner.start_instance(approval, 1, id="a")
        for i in range(2, 12):
            runner.run("a", i)
        assert runner.info("a").status is rf.Status.WAITING
    assert store.get("a").compacted > 0
    client = rf.Client(store)
    info = client.info("a")
    assert info.status is rf.Status.WAITING and len(info.open_waits) == 11
    assert info.open_waits[0]["events"] == ["approved", "rejected"]
    assert len(info.failures) == 11 and info.failures[0]["component"] == "broken"
    assert info.step_count == 22  # 11 sums and 11 failures
    assert client.get_results("a", ["sum"], all=True) == {
        "sum": [sum(range(1, k + 1)) for k in range(1, 12)]
    }
    with pytest.raises(rf.InstanceStateError, match="no open wait accepts"):
        client.resume("a", "maybe")
    client.resume("a", "approved", step="manager")  # accepted: recorded for a runner
    if isinstance(store, rf.SQLiteStore):
        assert main(["show", "a", "--store", f"sqlite:///{store.path}", "--events"]) == 0
        out = capsys.readouterr().out
        assert "compacted into a snapshot" in out and "manager" in out
        assert main(["list", "--store", f"sqlite:///{store.path}", "--format", "json"]) == 0
        (listed,) = json.loads(capsys.readouterr().out)
        assert listed["failures"] == 11 and listed["compacted"] > 0


# --- pruning ----------------------------------------------------------------------------------


def _kind(kind: str) -> Any:
    return lambda x: x["kind"] == kind


def shapes() -> rf.Workflow:
    """Ends idle, failed or waiting depending on its input."""
    return (
        rf.workflow(name="shapes")
        .add(rf.step(lambda x: {"kind": x["kind"], "blob": x["blob"]}, name="parse"))
        .add(
            rf.rule(
                condition=lambda x: x["kind"] == "fail", reaction=lambda x: 1 // 0, name="boom"
            ),
            to="parse",
        )
        .add(
            rf.rule(condition=lambda x: x["kind"] == "wait", reaction=lambda x: x, name="hold"),
            to="parse",
        )
        .add(rf.await_event(name="gate", events=["go"]), to="hold")
    )


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_runner_prune_removes_finished_instances_and_their_values(store: Store) -> None:
    gate = threading.Event()

    def slow(x: Any) -> Any:
        gate.wait(10)
        return x

    busy = rf.workflow(name="busy").add(rf.step(slow, name="slow"))
    with rf.Runner(store=store, workflows=[shapes, busy]) as runner:
        for wid, kind in [("i1", "idle"), ("i2", "idle"), ("f1", "fail"), ("w1", "wait")]:
            runner.start_instance(shapes, {"kind": kind, "blob": f"{BIG}-{wid}"}, id=wid)
        runner.start_instance(shapes, {"kind": "idle", "blob": f"{BIG}-s1"}, id="s1")
        runner.start_instance(shapes, {"kind": "idle", "blob": f"{BIG}-t1"}, id="t1")
        for wid in ("i1", "i2", "f1", "w1", "s1", "t1"):
            runner.wait(wid, timeout=10)
        runner.stop("s1")
        runner.start_instance(busy, 1, id="b1")  # running, held by this runner
        timed = rf.workflow(name="timed").add(
            rf.await_event(name="later", events=["x"], timeout=3600)
        )
        runner.start_instance(timed, 1, id="t2")  # waiting for its timer
        before = store.stats()
        with pytest.raises(rf.UsageError, match="finished"):
            runner.prune(0, statuses=["waiting"])
        assert runner.prune(timedelta(hours=1)) == 0  # nothing that old
        assert runner.prune(0, statuses=["failed"]) == 1 and not store.exists("f1")
        assert runner.prune(0, limit=1) == 1
        assert runner.prune(0.0) == 3  # the rest of the idle ones and the stopped one
        for wid in ("i1", "i2", "s1", "t1"):
            assert not store.exists(wid)
        for wid in ("w1", "b1", "t2"):
            assert store.exists(wid)
        after = store.stats()
        assert after["instances"] == before["instances"] - 5
        assert after["contents"] <= before["contents"] - 5  # each one's own large values
        assert runner.info("w1").status is rf.Status.WAITING
        gate.set()
        runner.wait("b1", timeout=10)


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_prune_keeps_an_instance_with_a_pending_command(store: Store) -> None:
    with rf.Runner(store=store, workflows=[shapes], executor="inline") as runner:
        runner.start_instance(shapes, {"kind": "idle", "blob": 1}, id="cmd")
        runner.start_instance(shapes, {"kind": "idle", "blob": 2}, id="done")
    rf.Client(store).run("cmd", {"kind": "idle", "blob": 3})  # nobody runs it: pending
    store.set_status("cmd", "idle")
    assert rf.runner.retention.prune_store(store, time.time() + 60) == ["done"]
    assert store.exists("cmd") and store.timers("cmd")


def test_a_serving_runner_prunes_in_the_background(tmp_path: Path) -> None:
    store = rf.SQLiteStore(tmp_path / "serve.db")
    with rf.Runner(store=store, workflows=[shapes], executor="inline") as runner:
        for i in range(5):
            runner.start_instance(shapes, {"kind": "idle", "blob": i}, id=f"old-{i}")
        runner.start_instance(shapes, {"kind": "wait", "blob": 0}, id="waiting")
    with rf.Runner(
        store=rf.SQLiteStore(store.path),
        workflows=[shapes],
        poll_interval=0.05,
        retention=timedelta(seconds=0.3),
    ):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and store.stats()["instances"] > 1:
            time.sleep(0.05)
    assert [m.workflow_id for m in store.list()] == ["waiting"]


# --- runeflow prune ---------------------------------------------------------------------------


def test_cli_prune_dry_run_then_for_real(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "cli.db"
    url = f"sqlite:///{db}"
    with rf.Runner(store=rf.SQLiteStore(db), workflows=[shapes], executor="inline") as runner:
        runner.start_instance(shapes, {"kind": "idle", "blob": 1}, id="idle-1")
        runner.start_instance(shapes, {"kind": "fail", "blob": 1}, id="failed-1")
        runner.start_instance(shapes, {"kind": "wait", "blob": 1}, id="waiting-1")
    capsys.readouterr()
    assert main(["prune", "--store", url, "--older-than", "7d"]) == 0
    assert capsys.readouterr().out == ""  # nothing a week old
    assert (
        main(["prune", "--store", url, "--older-than", "0s", "--dry-run", "--format", "table"]) == 0
    )
    captured = capsys.readouterr()
    assert (
        "idle-1" in captured.out and "failed-1" in captured.out and "waiting-1" not in captured.out
    )
    assert "would be pruned (dry run: nothing deleted)" in captured.err
    assert len(rf.SQLiteStore(db).list()) == 3
    args = ["prune", "--store", url, "--older-than", "0", "--status", "failed", "--format", "json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert (
        out["pruned"] == ["failed-1"] and out["dry_run"] is False and out["statuses"] == ["failed"]
    )
    assert main(["prune", "--store", url, "--older-than", "1d12h"]) == 0
    assert main(["prune", "--store", url, "--older-than", "0"]) == 0
    assert capsys.readouterr().out.split() == ["idle-1"]
    assert [m.workflow_id for m in rf.SQLiteStore(db).list()] == ["waiting-1"]


@pytest.mark.parametrize("duration", ["7x", "d", "-1d", "1d-2h", "seven days", "", "inf"])
def test_cli_prune_refuses_bad_durations(
    duration: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["prune", "--store", f"sqlite:///{tmp_path}/x.db", f"--older-than={duration}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--older-than" in err and ("not a duration" in err or "0 or more" in err)


def test_cli_prune_refuses_unfinished_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["prune", "--older-than", "1d", "--status", "running"])
    assert info.value.code == 2 and "invalid choice: 'running'" in capsys.readouterr().err


def test_cli_prune_without_a_store_deletes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prune", "--store", f"sqlite:///{tmp_path}/none.db", "--older-than", "1h"]) == 0
    assert "0 instance(s) pruned" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


# --- upgrading a store: fact rows get their owner from the log ---------------------------


def _old_rows(events: list[ev.Event]) -> tuple[bytes, list[str], dict[str, str], dict[str, bytes]]:
    """A log row as runeflow wrote it before schema 5: its blob, its fact ids, each fact's
    content hash ('' when its value is in the fact's row) and the contents."""
    from runeflow.codec import default_codec
    from runeflow.stores.base import content_key

    ids: list[str] = []
    hashes: dict[str, str] = {}
    contents: dict[str, bytes] = {}

    def keep(fact_id: str, value: Any) -> None:
        data = default_codec.encode(value)
        ids.append(fact_id)
        digest = content_key(data) or ""
        hashes[fact_id] = digest
        if digest:
            contents[digest] = data

    return default_codec.encode_events(events, fact_sink=keep), ids, hashes, contents


def _old_logs() -> dict[str, list[ev.Event]]:
    def produced(wid: str, fid: str, value: Any) -> list[ev.Event]:
        rid = f"r-{wid}-{fid}"
        fact = rf.Fact(fid, value, "step", "h" * 32, (), (fid,))
        return [ev.RunnableDispatched(rid, "step"), ev.FactProduced(fact, rid)]

    return {
        "gone": [*produced("gone", "f-own", BIG + "own"), *produced("gone", "f-both", 1)],
        "stays": [*produced("stays", "f-mine", BIG + "mine"), *produced("stays", "f-both", 1)],
    }


def test_sqlite_schema_4_gets_fact_owners_and_prunes(tmp_path: Path) -> None:
    import sqlite3

    from runeflow.stores.sqlite import MIGRATIONS

    path = tmp_path / "v4.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runeflow_schema (version INTEGER NOT NULL)")
        for statement in (s for migration in MIGRATIONS[:4] for s in migration):
            conn.execute(statement)
        conn.execute("INSERT INTO runeflow_schema VALUES (4)")
        for wid, events in _old_logs().items():
            blob, ids, hashes, contents = _old_rows(events)
            status = "idle" if wid == "gone" else "running"
            conn.execute(
                """INSERT INTO runeflow_instances (workflow_id, definition_name,
                definition_hash, status, created_at, updated_at, metadata)
                VALUES (?, 'n', 'h', ?, 1, 2, '{}')""",
                (wid, status),
            )
            conn.execute(
                "INSERT INTO runeflow_events VALUES (?, 4, 1, ?, ?, 2.0, NULL)",
                (wid, blob, json.dumps(ids)),
            )
            for fid, digest in hashes.items():
                data = None if digest else rf.codec.default_codec.encode(1)
                conn.execute(
                    "INSERT OR REPLACE INTO runeflow_facts VALUES (?, ?, ?, NULL)",
                    (fid, digest, data),
                )
            conn.executemany(
                "INSERT OR IGNORE INTO runeflow_contents VALUES (?, ?)", contents.items()
            )
        conn.execute(  # a damaged list of fact ids must not stop the upgrade
            "INSERT INTO runeflow_instances (workflow_id, definition_name, definition_hash, "
            "status, created_at, updated_at, metadata) VALUES ('bad', 'n', 'h', 'idle', 1, 2, '{}')"
        )
        conn.execute("INSERT INTO runeflow_events VALUES ('bad', 1, 1, x'00', 'not json', 2, NULL)")
    conn.close()
    with rf.SQLiteStore(path) as store:
        with sqlite3.connect(path) as conn:
            owners = dict(conn.execute("SELECT fact_id, workflow_id FROM runeflow_facts"))
        conn.close()
        assert owners == {"f-own": "gone", "f-mine": "stays", "f-both": None}
        assert store.stats()["contents"] == 2
        assert rf.runner.retention.prune_store(store, time.time(), ["idle"]) == ["bad", "gone"]
        assert store.stats()["contents"] == 1
        assert store.load_fact("f-both") == 1 and store.load_fact("f-mine") == BIG + "mine"
        with pytest.raises(rf.StoreError):
            store.load_fact("f-own")


@pytest.mark.postgres
def test_postgres_schema_5_gets_fact_owners_and_prunes(pg_schema: str) -> None:
    import psycopg

    from conftest import PG_DSN
    from runeflow.stores.postgres import MIGRATIONS, SCHEMA_VERSION_TABLE, PostgresStore

    schema = f"{pg_schema}_v5"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        for statement in (SCHEMA_VERSION_TABLE, *(s for m in MIGRATIONS[:5] for s in m)):
            conn.execute(statement.format(schema=f'"{schema}"'))
        conn.execute(f'INSERT INTO "{schema}".schema_version VALUES (5)')
        for wid, events in _old_logs().items():
            blob, ids, hashes, contents = _old_rows(events)
            status = "idle" if wid == "gone" else "running"
            conn.execute(
                f"""INSERT INTO "{schema}".instances (workflow_id, definition_name,
                definition_hash, status, created_at, updated_at)
                VALUES (%s, 'n', 'h', %s, 1, 2)""",
                (wid, status),
            )
            conn.execute(
                f"""INSERT INTO "{schema}".events (workflow_id, last, first, data, fact_ids, at)
                VALUES (%s, 4, 1, %s, %s, 2.0)""",
                (wid, blob, ids),
            )
            for fid, digest in hashes.items():
                data = None if digest else rf.codec.default_codec.encode(1)
                conn.execute(
                    f"""INSERT INTO "{schema}".facts (fact_id, hash, data) VALUES (%s, %s, %s)
                    ON CONFLICT DO NOTHING""",
                    (fid, digest, data),
                )
            for item in contents.items():
                conn.execute(
                    f'INSERT INTO "{schema}".contents VALUES (%s, %s) ON CONFLICT DO NOTHING',
                    item,
                )
    try:
        with PostgresStore(PG_DSN, schema=schema) as store:
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                rows = conn.execute(f'SELECT fact_id, workflow_id FROM "{schema}".facts')
                owners = dict(rows.fetchall())
            assert owners == {"f-own": "gone", "f-mine": "stays", "f-both": None}
            assert rf.runner.retention.prune_store(store, time.time(), ["idle"]) == ["gone"]
            assert store.stats()["contents"] == 1
            assert store.load_fact("f-both") == 1 and store.load_fact("f-mine") == BIG + "mine"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_aprune_is_the_async_twin_of_prune(tmp_path: Path) -> None:
    import asyncio

    async def main() -> int:
        async with rf.Runner(store=rf.SQLiteStore(tmp_path / "a.db"), executor="inline") as r:
            r.start_instance(shapes, {"kind": "idle", "blob": 1}, id="one")
            return await r.aprune(0)

    assert asyncio.run(main()) == 1


def test_background_retention_survives_a_failing_store(caplog: pytest.LogCaptureFixture) -> None:
    from runeflow.runner.retention import Retention

    calls: list[float] = []

    class Down(rf.MemoryStore):
        def prune(self, updated_before: float, *args: Any, **kwargs: Any) -> list[str]:
            calls.append(updated_before)
            raise rf.StoreUnavailableError("the database is restarting")

    retention = Retention(Down(), 3600.0)
    with caplog.at_level("WARNING", logger="runeflow.runner"):
        assert retention.tick() == 0
    assert "pruning failed" in caplog.text and "restarting" in caplog.text
    assert retention.tick() == 0 and len(calls) == 1  # not again before its interval
    assert time.time() - 3600 - 5 < calls[0] < time.time() - 3600 + 5


@pytest.mark.postgres
def test_postgres_a_command_racing_a_prune_leaves_no_timer(pg_store: Store) -> None:
    """A timer (a command sent to an instance) whose instance is being deleted by a prune
    waits for it, then finds no instance: refused, and no orphan timer row is left."""
    import psycopg

    schema = pg_store.schema  # type: ignore[attr-defined]
    pg_store.create("doomed", definition_name="d", definition_hash="h", status="idle")
    outcome: list[BaseException | None] = []

    def send() -> None:
        try:
            pg_store.schedule_timer(Timer(timer_id="cmd-doomed", workflow_id="doomed", fire_at=0))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with psycopg.connect(PG_DSN) as conn:  # what a prune does: lock the row, delete it
        conn.execute(
            f"SELECT 1 FROM \"{schema}\".instances WHERE workflow_id = 'doomed' FOR UPDATE"
        )
        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.3)
        assert not outcome  # it waits for the prune's transaction
        conn.execute(f"DELETE FROM \"{schema}\".instances WHERE workflow_id = 'doomed'")
        conn.commit()
    sender.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], WorkflowNotFoundError)
    assert pg_store.timers("doomed") == []
