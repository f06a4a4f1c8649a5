"""How ``runeflow list`` and ``runeflow show`` present instances: JSON data and text tables."""

from __future__ import annotations

import sys
from typing import Any

from runeflow.cli.output import format_time, print_table, short, to_jsonable
from runeflow.cli.report import failure_lines
from runeflow.model.events import RunnableFailed
from runeflow.stores.base import InstanceMeta
from runeflow.view import InstanceView

__all__ = ["event_data", "event_failure", "meta_dict", "print_view", "view_dict"]


def meta_dict(meta: InstanceMeta) -> dict[str, Any]:
    """One ``runeflow list --format json`` item."""
    return {
        "id": meta.workflow_id,
        "workflow": meta.definition_name,
        "status": meta.status,
        "events": meta.cursor,
        "compacted": meta.compacted,
        "created_at": meta.created_at,
        "updated_at": meta.updated_at,
        "definition": meta.metadata.get("definition"),
        "owner": meta.owner,
        "error": meta.error,
    }


def view_dict(view: InstanceView, with_events: bool) -> dict[str, Any]:
    """``runeflow show --format json``: everything known about an instance, as JSON data."""
    out = meta_dict(view.meta) | {
        "inputs": view.inputs,
        "results": view.results(),
        "productions": view.productions_by_component(),
        "steps": _step_rows(view),
        "running": sorted(set(view.running.values())),
        "open_waits": [
            {"wait_id": w.wait_id, "step": w.component, "events": list(w.events)}
            for w in view.open_waits.values()
        ],
        "timers": [
            {"timer_id": t.timer_id, "step": t.component, "event": t.event, "fire_at": t.fire_at}
            for t in view.timers.values()
        ],
        "failures": [event_failure(f) for f in view.failures],
    }
    if with_events:
        out["log"] = [_event_dict(e) for e in view.events]
    return out


def event_failure(failure: RunnableFailed, *, traceback: bool = True) -> dict[str, Any]:
    """A final failure from the log as ``{"component", "error_type", "message", "traceback",
    "attempt", "error"}`` (the shape of ``InstanceInfo.failures``); ``traceback=False`` leaves
    the traceback out."""
    out = {
        "component": failure.component,
        "error_type": failure.error.type,
        "message": failure.error.message,
        "traceback": failure.error.traceback,
        "attempt": failure.attempt,
        "error": str(failure.error),
    }
    if not traceback:
        del out["traceback"]
    return out


def _step_rows(view: InstanceView) -> list[dict[str, Any]]:
    failed: dict[str, int] = {}
    for f in view.failures:
        failed[f.component] = failed.get(f.component, 0) + 1
    rows = []
    for node in view.nodes():
        rows.append(
            {
                "component": node.name,
                "kind": node.kind,
                "state": node.state,
                "completed": view.completed[node.name],
                "failed": failed.get(node.name, 0),
                "retried": view.retried[node.name],
                "seconds": round(view.durations.get(node.name, 0.0), 6),
            }
        )
    return rows


def _event_dict(event: Any) -> dict[str, Any]:
    return {"kind": event.kind, **event_data(event)}


def event_data(event: Any) -> dict[str, Any]:
    """An event's fields as JSON data, without its kind (and never a component's code)."""
    data: dict[str, Any] = to_jsonable(event)
    data.pop("kind", None)
    if event.kind == "component_added":
        data.pop("component", None)
    return data


def print_view(view: InstanceView, with_events: bool) -> None:
    """``runeflow show``: a summary, then tables of steps, waits, timers, productions."""
    meta = view.meta
    took = meta.updated_at - meta.created_at
    fields = [
        ("instance", meta.workflow_id),
        ("workflow", meta.definition_name),
        ("status", meta.status),
        *([("error", " ".join(meta.error.split()))] if meta.error else []),
        ("failures", str(len(view.failures))),
        ("definition", str(meta.metadata.get("definition") or "-")),
        ("created", format_time(meta.created_at)),
        ("updated", f"{format_time(meta.updated_at)} ({took:.2f}s after creation)"),
        ("events", _events_cell(view)),
        ("inputs", short(view.inputs, 100)),
        ("results", short(view.results(), 100)),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")
    _print_state_tables(view)
    if with_events:
        events = enumerate(view.events, view.compacted + 1)
        rows = [[str(i), e.kind, short(event_data(e), 110)] for i, e in events]
        print()
        print_table("event log", ["#", "kind", "data"], rows, sys.stdout)


def _events_cell(view: InstanceView) -> str:
    """The number of events, and those compacted into the snapshot the view starts from."""
    if not view.compacted:
        return str(view.meta.cursor)
    return f"{view.meta.cursor} (1-{view.compacted} compacted into a snapshot)"


def _print_state_tables(view: InstanceView) -> None:
    steps = [
        [
            r["component"],
            r["kind"],
            r["state"],
            str(r["completed"]),
            str(r["failed"]),
            f"{r['seconds']:.3f}",
        ]
        for r in _step_rows(view)
    ]
    print()
    print_table(
        "steps", ["component", "kind", "state", "ran", "failed", "seconds"], steps, sys.stdout
    )
    if view.open_waits:
        rows = [
            [w.component, " | ".join(w.events), w.wait_id[:12]] for w in view.open_waits.values()
        ]
        print()
        print_table("open waits", ["step", "events", "wait id"], rows, sys.stdout)
    if view.timers:
        rows = [
            [t.component, t.event, format_time(t.fire_at), t.timer_id] for t in view.timers.values()
        ]
        print()
        print_table("timers", ["step", "event", "fires at", "timer id"], rows, sys.stdout)
    productions = [
        [component, short(value, 100)]
        for component, values in view.productions_by_component().items()
        for value in values
    ]
    print()
    print_table("productions", ["component", "value"], productions, sys.stdout)
    if view.failures:
        print()
        print("failures")
        for failure in view.failures:
            for line in failure_lines(event_failure(failure)):
                print(f"  {line}")
