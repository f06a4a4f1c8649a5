"""The read-only view brought up to date event by event, and the SVG drawing of its graph."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf
from _cli_flows import build_approval, build_every_kind, build_payment
from runeflow.drawing import nodes_of, to_svg
from runeflow.stores.base import Store
from runeflow.view import NodeInfo, load_summary, load_view, refresh_summary, refresh_view
from runeflow.viewdata import summary_dict

SVG = "{http://www.w3.org/2000/svg}"


def _same(a: Any, b: Any) -> None:
    assert a.cursor == b.cursor
    assert summary_dict(a) == summary_dict(b)
    assert a.nodes() == b.nodes()
    assert [f.id for f in a.facts] == [f.id for f in b.facts]


def test_refresh_reads_only_the_new_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = rf.SQLiteStore(tmp_path / "v.db")
    with rf.Runner(store=store, workflows=[build_approval], executor="inline") as runner:
        runner.start_instance(build_approval, {"id": 1}, id="a")
        runner.wait("a", timeout=10)
        view = load_view(store, "a", values=False, events=False)
        before = view.cursor
        assert view.open_waits and view.events == []
        runner.resume("a", "approved", payload={"by": "ann"})
        runner.wait("a", timeout=10)
    reads: list[int] = []
    stream = store.stream

    def counting(workflow_id: str, after: int = 0, **kw: Any) -> Any:
        reads.append(after)
        return stream(workflow_id, after, **kw)

    monkeypatch.setattr(store, "stream", counting)
    assert refresh_view(store, view) is view
    assert reads == [before] and view.cursor > before
    assert not view.open_waits and view.meta.status == "idle"
    _same(view, load_view(store, "a", values=False, events=False))
    reads.clear()
    assert refresh_view(store, view) is view and reads == []  # nothing new: no read
    store.close()


def test_a_summary_folds_as_the_view_does(tmp_path: Path) -> None:
    """The listing's fold (counters) says what the full view says of a failed and of a
    waiting instance, and is brought up to date from the new events only."""
    store = rf.SQLiteStore(tmp_path / "v.db")
    flows = [build_approval, build_payment]
    with rf.Runner(store=store, workflows=flows, executor="inline") as runner:
        runner.start_instance(build_payment, {"id": 1}, id="p")
        runner.start_instance(build_approval, {"id": 1}, id="a")
        runner.wait("p", timeout=10)
        runner.wait("a", timeout=10)
        failed, waiting = load_summary(store, "p"), load_summary(store, "a")
        for summary in (failed, waiting):
            view = load_view(store, summary.meta.workflow_id, values=False, events=False)
            assert summary_dict(summary) == summary_dict(view)
            assert summary.cursor == view.cursor and summary.meta == view.meta
        assert failed.first_failure == load_view(store, "p").failures[0]
        assert failed.failures == 1 and waiting.open_waits and not waiting.running
        runner.resume("a", "approved", payload={"by": "ann"})
        runner.wait("a", timeout=10)
    before = waiting.cursor
    assert refresh_summary(store, waiting) is waiting and waiting.cursor > before
    assert summary_dict(waiting) == summary_dict(load_summary(store, "a"))
    assert not waiting.open_waits and waiting.meta.status == "idle"
    store.close()


def test_refresh_after_delete_and_create_again(tmp_path: Path) -> None:
    store: Store = rf.SQLiteStore(tmp_path / "v.db")
    with rf.Runner(store=store, workflows=[build_approval], executor="inline") as runner:
        runner.start_instance(build_approval, {"id": 1}, id="a")
        runner.wait("a", timeout=10)
        view = load_view(store, "a")
        store.delete("a")
        with pytest.raises(rf.WorkflowNotFoundError):
            refresh_view(store, view)
        runner.start_instance(build_approval, {"id": 2}, id="a")
        runner.wait("a", timeout=10)
    again = refresh_view(store, view)
    assert again is not view
    _same(again, load_view(store, "a"))
    assert again.inputs == [{"id": 2}] and again.values and again.keep_events
    store.close()


def test_svg_draws_every_kind_with_its_state() -> None:
    svg = to_svg("every kind", nodes_of(build_every_kind()))
    root = ET.fromstring(svg)  # well-formed XML: usable as an image as well as inline
    groups = {g.get("data-component"): g for g in root.iter(f"{SVG}g")}
    assert set(groups) == {"root", *(n.name for n in nodes_of(build_every_kind()))}
    kinds = {g.get("data-kind") for g in groups.values()} - {None}
    assert kinds == {"rule", "map", "reduce", "accumulator", "state_machine", "await", "step"}
    labels = [t.text for t in root.iter(f"{SVG}text") if t.text in ("1", "2")]
    assert sorted(labels) == ["1", "2"]  # the join's arguments
    assert "<script" not in svg and "style=" not in svg  # no script, no inline style


def test_svg_of_a_damaged_graph_still_draws() -> None:
    """A stored log is untrusted: unknown parents and cycles draw, never loop."""
    nodes = [
        NodeInfo(name="a", kind="step", parents=("b",), state="ran", counts={"ran": 1}),
        NodeInfo(name="b", kind="step", parents=("a",), state="failed", counts={"failed": 2}),
        NodeInfo(name="c", kind="mystery", parents=("nowhere", "root"), state="pending"),
        NodeInfo(name="x" * 200, kind="step", parents=("root",)),
    ]
    root = ET.fromstring(to_svg("damaged", nodes))
    assert {g.get("data-component") for g in root.iter(f"{SVG}g")} >= {"a", "b", "c"}


def test_cli_graph_draws_svg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runeflow.cli import main

    target = str(Path(__file__).with_name("_cli_flows.py")) + ":approval"
    assert main(["graph", target, "--format", "svg"]) == 0
    root = ET.fromstring(capsys.readouterr().out)
    assert "manager" in {g.get("data-component") for g in root.iter(f"{SVG}g")}


def test_svg_draws_what_rule_conditions_read() -> None:
    from test_model_meta import build as budget

    root = ET.fromstring(to_svg("budget", nodes_of(budget())))
    dashed = [p for p in root.iter(f"{SVG}path") if p.get("stroke-dasharray") == "4 3"]
    labels = {t.text for t in root.iter(f"{SVG}text")}
    assert len(dashed) == 3 and {"state_of", "fact_count", "step_ran"} <= labels
