"""The dashboard's shared caches: consistent answers while a running instance changes under
many concurrent requests, and listing summaries that keep counters, not facts (the
Dashboard class alone: no web framework)."""

from __future__ import annotations

import gc
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf
from _runner_flows import build_approval, build_squares
from runeflow.model.facts import FactRef
from runeflow.ui.service import Dashboard
from runeflow.view import InstanceSummary, load_summary, load_view
from runeflow.viewdata import summary_dict


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Let threads change places far more often than every 5 ms, so that a request reading
    a view while another one folds events into it is caught at once."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def test_one_running_instance_read_from_many_threads(tmp_path: Path, switch_often: None) -> None:
    """Four requesters read one instance's page, graph, row and summary over and over while
    it runs: every input opens a wait with a timer that fires 0.3 s later, so dozens of
    waits and timers are open at once and keep changing under them."""
    store = rf.SQLiteStore(tmp_path / "busy.db")
    dashboard = Dashboard(store, summary_budget=10.0)
    errors: list[BaseException] = []
    seen: list[int] = []
    feeding = threading.Event()
    feeding.set()

    def hammer(n: int) -> None:
        try:
            rounds = 0
            while feeding.is_set():
                rounds += 1
                detail = dashboard.instance("busy")
                seen.append(detail["events"]["total"])
                assert detail["graph"]["svg"].startswith("<svg")
                assert "<svg" in dashboard.graph_svg("busy")
                assert dashboard.summaries(["busy"])["summaries"]["busy"]["failures"] == 0
                if rounds % 10 == n:
                    [row] = dashboard.instances({"q": ["busy"]})["instances"]
                    assert row["summary"] is not None and row["summary"]["failures"] == 0
                    fact = detail["facts"]["items"][-1]["id"]
                    assert dashboard.fact("busy", fact)["id"] == fact
        except BaseException as exc:  # every error is the test's finding
            errors.append(exc)

    approval = build_approval(timeout=0.3)
    with rf.Runner(store=store, workflows=[approval], executor="threads") as runner:
        runner.start_instance(approval, {"id": 0}, id="busy")
        readers = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
        for reader in readers:
            reader.start()
        try:
            for n in range(1, 150):  # the instance keeps changing while they read it
                runner.run("busy", {"id": n})
                time.sleep(0.005)
            deadline = time.monotonic() + 60
            while (info := runner.info("busy")).open_waits or info.status != rf.Status.IDLE:
                assert time.monotonic() < deadline, f"the waits did not all time out: {info}"
                time.sleep(0.05)
        finally:
            feeding.clear()
            for reader in readers:
                reader.join(timeout=60)
    assert errors == [], errors[:3]
    assert len(set(seen)) > 3  # the readers saw the instance progress
    settled = dashboard.instance("busy")
    fresh = Dashboard(store).instance("busy")
    for key in ("version", "instance", "steps", "facts", "graph", "open_waits", "timers"):
        assert settled[key] == fresh[key], key
    assert settled["open_waits"] == [] and settled["steps"]
    store.close()


def _reachable(root: Any) -> list[Any]:
    """Every object ``root`` holds, directly or not (classes, modules and functions not
    followed: they lead to everything global)."""
    seen: set[int] = set()
    found: list[Any] = []
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        found.append(obj)
        todo.extend(gc.get_referents(obj))
    return found


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rf.SQLiteStore]:
    """A small instance (20 facts) and a big one (over 3,000 facts)."""
    store = rf.SQLiteStore(tmp_path_factory.mktemp("summary") / "squares.db")
    with rf.Runner(store=store, workflows=[build_squares], executor="inline") as runner:
        runner.start_instance(build_squares, list(range(20)), id="small")
        runner.start_instance(build_squares, list(range(3000)), id="big")
        runner.wait("small", timeout=60)
        runner.wait("big", timeout=120)
    yield store
    store.close()


def test_a_summary_keeps_counters_not_facts(squares: rf.SQLiteStore) -> None:
    small, big = load_summary(squares, "small"), load_summary(squares, "big")
    view = load_view(squares, "big", values=False, events=False)
    assert sum(isinstance(o, FactRef) for o in _reachable(view)) > 3000  # what a view holds
    assert summary_dict(big) == summary_dict(view)
    assert big.cursor == view.cursor > 6000 and big.steps > 3000
    held = _reachable(big)
    assert not any(isinstance(o, FactRef) for o in held)
    assert _records(held) == _records(_reachable(small))  # whatever the log's length


def _records(objects: list[Any]) -> int:
    """How many of ``objects`` are containers or records (numbers and text left out: the
    interpreter shares small ones, so their count varies with the values)."""
    return sum(not isinstance(o, int | float | str | bytes) for o in objects)


def test_the_listing_cache_holds_summaries_only(squares: rf.SQLiteStore) -> None:
    dashboard = Dashboard(squares, summary_budget=10.0)
    rows = {r["id"]: r for r in dashboard.instances({})["instances"]}
    assert rows["big"]["summary"]["steps"] > 3000
    cached = _reachable(dashboard._summaries._entries)  # what the cache holds
    assert sum(isinstance(o, InstanceSummary) for o in cached) == 2
    assert not any(isinstance(o, FactRef) for o in cached)
